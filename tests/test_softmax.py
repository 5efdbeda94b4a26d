import numpy

from conftest import assert_gradients_close
from nptransformer.op_checks import check_softmax
from nptransformer.ops import softmax_backward, softmax_forward


def test_softmax_forward_values():
    out, _ = softmax_forward(numpy.array([0.0, numpy.log(3.0)]))
    numpy.testing.assert_allclose(out, [0.25, 0.75])


def test_softmax_rows_sum_to_one_on_any_axis(rng):
    x = rng.standard_normal((3, 4, 5))
    for axis in (0, 1, -1):
        out, _ = softmax_forward(x, axis=axis)
        numpy.testing.assert_allclose(out.sum(axis=axis), 1.0)


def test_softmax_huge_logits_stay_finite():
    out, _ = softmax_forward(numpy.array([[1e4, 0.0, -1e4], [1000.0, 1000.0, 1000.0]]))
    assert numpy.isfinite(out).all()
    numpy.testing.assert_allclose(out[0], [1.0, 0.0, 0.0])
    numpy.testing.assert_allclose(out[1], [1 / 3] * 3)


def test_softmax_all_negative_infinity_row_gives_zeros():
    out, cache = softmax_forward(
        numpy.array([[-numpy.inf, -numpy.inf], [0.0, -numpy.inf]])
    )
    numpy.testing.assert_array_equal(out, [[0.0, 0.0], [1.0, 0.0]])
    dx = softmax_backward(numpy.ones((2, 2)), cache)
    assert numpy.isfinite(dx).all()


def test_softmax_float32_stays_float32(rng):
    out, _ = softmax_forward(rng.standard_normal((2, 3)).astype(numpy.float32))
    assert out.dtype == numpy.float32


def test_softmax_gradients(rng):
    # Expected error ~1e-10.
    assert_gradients_close(check_softmax(rng), 1e-7)
