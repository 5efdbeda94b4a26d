import numpy
import pytest

from conftest import assert_gradients_close
from nptransformer.op_checks import check_dropout
from nptransformer.ops import dropout_backward, dropout_forward


def test_dropout_identity_when_not_training(rng):
    x = rng.standard_normal((5, 5))
    out, cache = dropout_forward(x, 0.5, numpy.random.default_rng(0), training=False)
    assert out is x
    assert dropout_backward(x, cache) is x


def test_dropout_p_zero_draws_nothing(rng):
    generator = numpy.random.default_rng(0)
    state = generator.bit_generator.state
    out, _ = dropout_forward(rng.standard_normal(4), 0.0, generator)
    assert generator.bit_generator.state == state


def test_dropout_keeps_expectation_and_rate():
    x = numpy.ones((200, 500))
    out, _ = dropout_forward(x, 0.25, numpy.random.default_rng(0))
    dropped = (out == 0).mean()
    assert abs(dropped - 0.25) < 0.01
    assert abs(out.mean() - 1.0) < 0.01
    numpy.testing.assert_allclose(out[out != 0], 1.0 / 0.75)


def test_dropout_same_seed_same_mask(rng):
    x = rng.standard_normal((3, 4)).astype(numpy.float32)
    a, _ = dropout_forward(x, 0.5, numpy.random.default_rng(7))
    b, _ = dropout_forward(x, 0.5, numpy.random.default_rng(7))
    numpy.testing.assert_array_equal(a, b)
    assert a.dtype == numpy.float32


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_rejects_bad_probability(p):
    with pytest.raises(ValueError, match=str(p)):
        dropout_forward(numpy.ones(3), p, numpy.random.default_rng(0))


def test_dropout_gradients(rng):
    # Expected error ~1e-11.
    assert_gradients_close(check_dropout(rng), 1e-7)
