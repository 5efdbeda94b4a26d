import numpy
import pytest

from conftest import assert_gradients_close
from nptransformer.op_checks import check_linear
from nptransformer.ops import linear_backward, linear_forward


def test_linear_forward_values():
    x = numpy.array([[1.0, 2.0]])
    W = numpy.array([[1.0, 0.0, -1.0], [0.5, 2.0, 1.0]])
    b = numpy.array([0.0, 1.0, -1.0])
    out, _ = linear_forward(x, W, b)
    numpy.testing.assert_allclose(out, [[2.0, 5.0, 0.0]])


def test_linear_shapes_with_leading_axes(rng):
    x = rng.standard_normal((2, 3, 4)).astype(numpy.float32)
    W = rng.standard_normal((4, 5)).astype(numpy.float32)
    out, cache = linear_forward(x, W, None)
    assert out.shape == (2, 3, 5)
    assert out.dtype == numpy.float32
    dx, dW, db = linear_backward(numpy.ones_like(out), cache)
    assert dx.shape == x.shape
    assert dW.shape == W.shape
    assert db is None


def test_linear_gradients(rng):
    # Expected error ~1e-10 in float64 with eps 1e-5.
    assert_gradients_close(check_linear(rng), 1e-7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_gradients_other_seeds(seed):
    assert_gradients_close(check_linear(numpy.random.default_rng(seed)), 1e-7)
