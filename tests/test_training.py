import numpy

from nptransformer import Transformer, TransformerConfig
from nptransformer.decoding import exact_match, greedy_decode
from nptransformer.tasks import BOS, EOS, PAD, get_task
from nptransformer.train import Trainer, TrainSettings, default_model_config


def test_tiny_reverse_reaches_95_percent():
    # Reverse needs cross-attention to read the source backwards, so a falling loss
    # alone would not prove the model works. This takes about 10-20 s on 2 cores.
    task = get_task("reverse", num_symbols=6, max_length=5)
    config = default_model_config(task)
    settings = TrainSettings(
        steps=400,
        batch_size=64,
        warmup_steps=100,
        lr_factor=0.5,
        eval_every=0,
        heldout_size=300,
        seed=1,
    )
    trainer = Trainer(task, config, settings)
    history = trainer.run()
    assert history["loss"][-1] < history["loss"][0]
    accuracy = trainer.evaluate()
    assert accuracy >= 0.95, f"held-out exact-sequence accuracy {accuracy:.3f} < 0.95"


def test_greedy_decode_stops_each_row_at_eos():
    config = TransformerConfig(
        src_vocab_size=5,
        tgt_vocab_size=5,
        d_model=8,
        num_heads=2,
        num_encoder_layers=1,
        num_decoder_layers=1,
        d_ff=8,
        dropout=0.0,
        max_len=20,
    )
    model = Transformer(config)
    # Force the generator to prefer EOS for every position after a bias shift.
    model.parameters()["generator.b"][:] = 0.0
    model.parameters()["generator.b"][EOS] = 100.0
    out = greedy_decode(model, numpy.array([[3, 4, 2], [4, 2, PAD]]), max_len=6)
    numpy.testing.assert_array_equal(out, [[EOS], [EOS]])


def test_exact_match_counts_through_eos():
    reference = numpy.array([[5, 4, EOS], [6, EOS, PAD]])
    predicted = numpy.array([[5, 4, EOS, 9], [6, 7, EOS, PAD]])
    numpy.testing.assert_array_equal(exact_match(predicted, reference), [True, False])
    short = numpy.array([[5, 4], [6, EOS]])
    numpy.testing.assert_array_equal(exact_match(short, reference), [False, True])


def test_same_seed_same_run():
    task = get_task("copy", num_symbols=5, max_length=4)
    settings = TrainSettings(steps=5, batch_size=8, eval_every=0, heldout_size=10)
    config = default_model_config(task)
    a = Trainer(task, config, settings)
    b = Trainer(task, config, settings)
    a.run()
    b.run()
    assert a.history["loss"] == b.history["loss"]
    for name, value in a.model.parameters().items():
        numpy.testing.assert_array_equal(
            value, b.model.parameters()[name], err_msg=name
        )


def test_decoders_never_emit_pad_or_bos():
    from nptransformer.decoding import beam_search

    config = TransformerConfig(src_vocab_size=6, tgt_vocab_size=6, d_model=8, num_heads=2,
                               num_encoder_layers=1, num_decoder_layers=1, d_ff=8,
                               dropout=0.0, max_len=10)  # fmt: skip
    model = Transformer(config)
    bias = model.parameters()["generator.b"]
    bias[:] = 0.0
    bias[BOS] = 50.0  # the model prefers BOS, then PAD, then symbol 4
    bias[PAD] = 40.0
    bias[4] = 30.0
    src = numpy.array([[3, 5, EOS]])
    for output in (greedy_decode(model, src, max_len=4), beam_search(model, src, 4)):
        numpy.testing.assert_array_equal(output, [[4, 4, 4, 4]])
