import numpy
import pytest

from conftest import assert_gradients_close
from nptransformer import Transformer, TransformerConfig, check_gradients
from nptransformer.ops import cross_entropy_backward, cross_entropy_forward

PAD = 0


def tiny_config(**overrides):
    values = dict(
        src_vocab_size=7,
        tgt_vocab_size=7,
        d_model=8,
        num_heads=2,
        num_encoder_layers=2,
        num_decoder_layers=2,
        d_ff=12,
        dropout=0.0,
        max_len=16,
        dtype="float64",
    )
    values.update(overrides)
    return TransformerConfig(**values)


def padded_batch():
    src = numpy.array([[3, 4, 5, 2], [6, 2, PAD, PAD]])
    tgt_in = numpy.array([[1, 5, 4, 3], [1, 6, PAD, PAD]])
    tgt_out = numpy.array([[5, 4, 3, 2], [6, 2, PAD, PAD]])
    return src, tgt_in, tgt_out


def model_gradient_report(model, max_entries=None):
    src, tgt_in, tgt_out = padded_batch()

    def forward(_inputs):
        logits = model.forward(src, tgt_in, training=True)
        return cross_entropy_forward(logits, tgt_out, 0.1, ignore_index=PAD)

    def backward(dloss, cache):
        model.zero_grad()
        model.backward(cross_entropy_backward(cache, dloss))
        return model.gradients()

    return check_gradients(
        forward, backward, model.parameters(), max_entries=max_entries
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"norm_first": True},
        {"tie_embeddings": True},
        {"tie_embeddings": True, "share_embeddings": True, "norm_first": True},
    ],
    ids=["post-ln", "pre-ln", "tied", "tied-shared-pre-ln"],
)
def test_whole_model_gradients(overrides):
    model = Transformer(tiny_config(**overrides), seed=3)
    # Expected error ~1e-9 for every parameter; bk is judged against the floor.
    assert_gradients_close(model_gradient_report(model, max_entries=40), 1e-7)


def test_parameter_names_and_shapes():
    model = Transformer(tiny_config(num_encoder_layers=1, num_decoder_layers=1))
    params = model.parameters()
    assert params["src_embedding.weight"].shape == (7, 8)
    assert params["encoder.layers.0.self_attn.Wq"].shape == (8, 8)
    assert params["encoder.layers.0.ffn.W1"].shape == (8, 12)
    assert params["decoder.layers.0.cross_attn.bk"].shape == (8,)
    assert params["decoder.layers.0.norm3.gamma"].shape == (8,)
    assert params["generator.W"].shape == (8, 7)
    assert "encoder.norm.gamma" not in params
    assert set(params) == set(model.gradients())


def test_tied_and_shared_names():
    model = Transformer(
        tiny_config(tie_embeddings=True, share_embeddings=True, norm_first=True)
    )
    params = model.parameters()
    assert "embedding.weight" in params
    assert "src_embedding.weight" not in params
    assert "generator.W" not in params
    assert "generator.b" in params
    assert "encoder.norm.gamma" in params
    assert "decoder.norm.beta" in params


def test_forward_shapes_and_dtype():
    model = Transformer(tiny_config(dtype="float32"))
    src, tgt_in, _ = padded_batch()
    logits = model.forward(src, tgt_in)
    assert logits.shape == (2, 4, 7)
    assert logits.dtype == numpy.float32
    assert all(p.dtype == numpy.float32 for p in model.parameters().values())


def test_parameters_are_live_arrays():
    model = Transformer(tiny_config())
    src, tgt_in, _ = padded_batch()
    before = model.forward(src, tgt_in)
    model.parameters()["generator.b"][:] += 1.0
    after = model.forward(src, tgt_in)
    numpy.testing.assert_allclose(after, before + 1.0)


def test_padding_does_not_change_real_positions():
    model = Transformer(tiny_config())
    src = numpy.array([[3, 4, 2]])
    tgt_in = numpy.array([[1, 4, 3]])
    short = model.forward(src, tgt_in)
    padded = model.forward(
        numpy.array([[3, 4, 2, PAD, PAD]]), numpy.array([[1, 4, 3, PAD]])
    )
    numpy.testing.assert_allclose(padded[:, :3], short, atol=1e-12)


def test_decoder_is_causal():
    model = Transformer(tiny_config())
    src = numpy.array([[3, 4, 2]])
    a = model.forward(src, numpy.array([[1, 4, 3, 5]]))
    b = model.forward(src, numpy.array([[1, 4, 6, 6]]))
    numpy.testing.assert_allclose(a[:, :2], b[:, :2], atol=1e-12)
    assert not numpy.allclose(a[:, 2:], b[:, 2:])


def test_return_attention_keys_and_shapes():
    model = Transformer(tiny_config())
    src, tgt_in, _ = padded_batch()
    logits, weights = model.forward(src, tgt_in, return_attention=True)
    assert set(weights) == {
        "encoder.layers.0.self_attn",
        "encoder.layers.1.self_attn",
        "decoder.layers.0.self_attn",
        "decoder.layers.1.self_attn",
        "decoder.layers.0.cross_attn",
        "decoder.layers.1.cross_attn",
    }
    assert weights["decoder.layers.0.cross_attn"].shape == (2, 2, 4, 4)
    # padded source keys get no weight
    assert numpy.all(weights["decoder.layers.1.cross_attn"][1, :, :, 2:] == 0)


def test_dropout_only_in_training():
    model = Transformer(tiny_config(dropout=0.5))
    src, tgt_in, _ = padded_batch()
    a = model.forward(src, tgt_in)
    b = model.forward(src, tgt_in)
    numpy.testing.assert_array_equal(a, b)
    c = model.forward(src, tgt_in, training=True)
    assert not numpy.allclose(a, c)


def test_backward_accumulates_until_zero_grad():
    model = Transformer(tiny_config())
    src, tgt_in, _ = padded_batch()
    logits = model.forward(src, tgt_in, training=True)
    dlogits = numpy.ones_like(logits)
    model.zero_grad()
    model.backward(dlogits)
    once = {k: v.copy() for k, v in model.gradients().items()}
    model.backward(dlogits)
    for name, grad in model.gradients().items():
        numpy.testing.assert_allclose(grad, 2 * once[name], err_msg=name)
    model.zero_grad()
    assert all(not g.any() for g in model.gradients().values())


def test_backward_without_training_forward_raises():
    model = Transformer(tiny_config())
    with pytest.raises(RuntimeError, match="training=True"):
        model.backward(numpy.zeros((1, 1, 7)))


def test_state_dict_round_trip():
    a = Transformer(tiny_config(), seed=1)
    b = Transformer(tiny_config(), seed=2)
    b.load_state_dict(a.state_dict())
    src, tgt_in, _ = padded_batch()
    numpy.testing.assert_array_equal(a.forward(src, tgt_in), b.forward(src, tgt_in))
