import numpy

from conftest import assert_gradients_close
from nptransformer.op_checks import check_layernorm
from nptransformer.ops import layernorm_forward


def test_layernorm_normalises_each_row(rng):
    x = 3.0 + 2.0 * rng.standard_normal((4, 8))
    out, _ = layernorm_forward(x, numpy.ones(8), numpy.zeros(8), eps=0.0)
    numpy.testing.assert_allclose(out.mean(axis=-1), 0.0, atol=1e-12)
    # Biased variance: dividing by D, not D - 1, gives exactly 1.
    numpy.testing.assert_allclose(out.var(axis=-1), 1.0, rtol=1e-12)


def test_layernorm_hand_computed_values():
    x = numpy.array([[1.0, 3.0]])  # mean 2, biased variance 1
    out, _ = layernorm_forward(
        x, numpy.array([2.0, 1.0]), numpy.array([0.5, 0.0]), eps=0.0
    )
    numpy.testing.assert_allclose(out, [[-1.5, 1.0]])


def test_layernorm_odd_width_and_shape(rng):
    x = rng.standard_normal((2, 3, 5)).astype(numpy.float32)
    out, _ = layernorm_forward(
        x, numpy.ones(5, numpy.float32), numpy.zeros(5, numpy.float32)
    )
    assert out.shape == x.shape
    assert out.dtype == numpy.float32


def test_layernorm_gradients(rng):
    # Expected error ~1e-10.
    assert_gradients_close(check_layernorm(rng), 1e-7)
