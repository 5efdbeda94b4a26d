import numpy
import pytest

from conftest import assert_gradients_close
from nptransformer.op_checks import check_attention
from nptransformer.ops import attention_backward, attention_forward


def test_attention_uniform_weights_average_values():
    q = numpy.zeros((1, 2, 3))
    k = numpy.ones((1, 4, 3))
    v = numpy.arange(8.0).reshape(1, 4, 2)
    out, cache = attention_forward(q, k, v)
    numpy.testing.assert_allclose(out, numpy.broadcast_to(v.mean(axis=1), (1, 2, 2)))
    numpy.testing.assert_allclose(cache[3], 0.25)


def test_attention_scales_by_sqrt_key_width():
    q = numpy.array([[[1.0, 1.0, 1.0, 1.0]]])
    k = numpy.array([[[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]])
    v = numpy.array([[[1.0], [0.0]]])
    out, _ = attention_forward(q, k, v)
    # scores are [4 / 2, 0]: weight of the first key is e^2 / (e^2 + 1)
    assert out[0, 0, 0] == pytest.approx(numpy.exp(2) / (numpy.exp(2) + 1))


def test_attention_causal_mask_hides_future(rng):
    T = 4
    q, k, v = (rng.standard_normal((2, T, 3)) for _ in range(3))
    causal = numpy.tril(numpy.ones((T, T), dtype=bool))
    _, cache = attention_forward(q, k, v, causal)
    weights = cache[3]
    assert numpy.all(weights[:, ~causal] == 0.0)
    numpy.testing.assert_allclose(weights.sum(axis=-1), 1.0)


def test_attention_fully_masked_row_gives_zeros(rng):
    q, k, v = (
        rng.standard_normal((1, 2, 3)),
        rng.standard_normal((1, 3, 3)),
        rng.standard_normal((1, 3, 2)),
    )
    mask = numpy.array([[True, False, True], [False, False, False]])
    out, cache = attention_forward(q, k, v, mask)
    numpy.testing.assert_array_equal(out[0, 1], 0.0)
    dq, dk, dv = attention_backward(rng.standard_normal(out.shape), cache)
    numpy.testing.assert_array_equal(dq[0, 1], 0.0)
    assert numpy.isfinite(dk).all()
    assert numpy.isfinite(dv).all()


def test_attention_huge_scores_stay_finite():
    q = numpy.full((1, 1, 2), 1e4)
    k = numpy.array([[[1e4, 1e4], [-1e4, -1e4]]])
    v = numpy.array([[[1.0], [2.0]]])
    out, _ = attention_forward(q, k, v)
    numpy.testing.assert_allclose(out, [[[1.0]]])


@pytest.mark.parametrize(
    "mask_shape", [(4, 5), (2, 1, 4, 5), (2, 1, 1, 5), (1, 3, 4, 5)]
)
def test_attention_mask_broadcast_shapes(rng, mask_shape):
    q = rng.standard_normal((2, 3, 4, 6))
    k = rng.standard_normal((2, 3, 5, 6))
    v = rng.standard_normal((2, 3, 5, 2))
    mask = rng.random(mask_shape) > 0.3
    out, cache = attention_forward(q, k, v, mask)
    assert out.shape == (2, 3, 4, 2)
    assert numpy.all(cache[3][..., ~numpy.broadcast_to(mask, (2, 3, 4, 5))] == 0)


def test_attention_rejects_unbroadcastable_mask(rng):
    q = rng.standard_normal((2, 4, 6))
    mask = numpy.ones((3, 5), dtype=bool)
    with pytest.raises(ValueError, match=r"\(3, 5\)"):
        attention_forward(
            q, rng.standard_normal((2, 5, 6)), rng.standard_normal((2, 5, 6)), mask
        )


def test_attention_rejects_non_boolean_mask(rng):
    q = rng.standard_normal((2, 4, 6))
    with pytest.raises(TypeError, match="boolean"):
        attention_forward(q, q, q, numpy.ones((4, 4)))


def test_attention_gradients(rng):
    # Expected error ~1e-10; the check includes a fully masked query row.
    assert_gradients_close(check_attention(rng), 1e-7)
