"""Bad input raises the error DESIGN names, with the offending value in the message."""

import numpy
import pytest

from nptransformer import Transformer, TransformerConfig


def make_model(**overrides):
    values = dict(
        src_vocab_size=7,
        tgt_vocab_size=9,
        d_model=8,
        num_heads=2,
        num_encoder_layers=1,
        num_decoder_layers=1,
        d_ff=8,
        max_len=6,
    )
    values.update(overrides)
    return Transformer(TransformerConfig(**values))


SRC = numpy.array([[3, 4, 2]])
TGT = numpy.array([[1, 5, 6]])


def test_src_id_too_large():
    with pytest.raises(ValueError, match=r"src contains token id 7.*\[0, 7\)"):
        make_model().forward(numpy.array([[3, 7, 2]]), TGT)


def test_tgt_id_too_large():
    with pytest.raises(ValueError, match=r"tgt_in contains token id 9"):
        make_model().forward(SRC, numpy.array([[1, 9]]))


def test_negative_id():
    with pytest.raises(ValueError, match="token id -1"):
        make_model().forward(numpy.array([[3, -1, 2]]), TGT)


def test_float_ids():
    with pytest.raises(TypeError, match="float64"):
        make_model().forward(SRC.astype(float), TGT)


def test_non_array_ids():
    with pytest.raises(TypeError, match="list"):
        make_model().forward([[3, 4, 2]], TGT)


def test_wrong_rank():
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        make_model().forward(numpy.array([3, 4, 2]), TGT)


def test_mismatched_batch_sizes():
    with pytest.raises(ValueError, match="src has 1 rows, tgt_in has 2"):
        make_model().forward(SRC, numpy.array([[1, 5], [1, 6]]))


def test_longer_than_max_len():
    with pytest.raises(ValueError, match="length 7, longer than max_len 6"):
        make_model().forward(numpy.full((1, 7), 3), TGT)


def test_heads_do_not_divide_d_model():
    with pytest.raises(ValueError, match="d_model 10 is not divisible by num_heads 4"):
        make_model(d_model=10, num_heads=4)


@pytest.mark.parametrize(
    "field, value, error",
    [
        ("d_model", 0, ValueError),
        ("num_heads", -2, ValueError),
        ("d_ff", 2.5, TypeError),
        ("dropout", 1.0, ValueError),
        ("dtype", "float16", ValueError),
        ("pad_id", 7, ValueError),
    ],
)
def test_bad_config_values(field, value, error):
    with pytest.raises(error, match=str(value)):
        make_model(**{field: value})


def test_share_embeddings_needs_equal_vocabularies():
    with pytest.raises(ValueError, match="7 and tgt_vocab_size 9"):
        make_model(share_embeddings=True)


def test_model_never_returns_nan_for_fully_padded_source():
    model = make_model()
    logits = model.forward(numpy.array([[0, 0, 0]]), TGT)
    assert numpy.isfinite(logits).all()


@pytest.mark.parametrize(
    "field, value", [("steps", 0), ("batch_size", -3), ("eval_every", -1)]
)
def test_train_settings_reject_non_positive(field, value):
    from nptransformer.train import TrainSettings

    with pytest.raises(ValueError, match=f"{field} must be .* got {value}"):
        TrainSettings(**{field: value})


def test_vocabulary_too_small_for_task():
    from nptransformer.tasks import get_task

    with pytest.raises(ValueError, match="at least 2, got 1"):
        get_task("reverse", num_symbols=1)


def test_unknown_task_named():
    from nptransformer.tasks import get_task

    with pytest.raises(ValueError, match="unknown task 'sorting'"):
        get_task("sorting")


def test_config_rejects_string_dropout():
    with pytest.raises(TypeError, match="dropout must be a number, got '0.1'"):
        make_model(dropout="0.1")


def test_config_accepts_numpy_dtype():
    assert make_model(dtype=numpy.float64).config.dtype == "float64"


def test_cross_entropy_rejects_list_targets():
    from nptransformer.ops import cross_entropy_forward

    with pytest.raises(TypeError, match="targets must be an integer array, got list"):
        cross_entropy_forward(numpy.zeros((1, 2, 3)), [[0, 1]])


def test_schedule_rejects_string_and_infinite():
    from nptransformer import NoamSchedule

    with pytest.raises(TypeError, match="d_model must be a number, got '64'"):
        NoamSchedule("64")
    with pytest.raises(ValueError, match="inf"):
        NoamSchedule(64, factor=float("inf"))


def test_load_state_dict_rejects_nan():
    model = make_model()
    state = model.state_dict()
    state["generator.b"][0] = numpy.nan
    with pytest.raises(ValueError, match="generator.b holds NaN"):
        model.load_state_dict(state)
