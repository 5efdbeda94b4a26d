"""The checker itself must catch wrong backward passes."""

import numpy

from nptransformer import check_gradients
from nptransformer.ops import layernorm_forward, softmax_forward


def _softmax_without_cross_term(dout, cache):
    y, _axis = cache
    return {"x": y * dout}


def _layernorm_without_mean_term(dout, cache):
    x_hat, inv_std, gamma = cache
    dx_hat = dout * gamma
    dx = inv_std * (dx_hat - x_hat * (dx_hat * x_hat).mean(axis=-1, keepdims=True))
    return {"x": dx}


def test_gradcheck_catches_softmax_without_cross_term(rng):
    report = check_gradients(
        lambda i: softmax_forward(i["x"]),
        _softmax_without_cross_term,
        {"x": rng.standard_normal((3, 5))},
    )
    assert report.max_error > 1e-2, str(report)


def test_gradcheck_catches_layernorm_without_mean_term(rng):
    gamma, beta = rng.standard_normal(6), rng.standard_normal(6)
    report = check_gradients(
        lambda i: layernorm_forward(i["x"], gamma, beta),
        _layernorm_without_mean_term,
        {"x": rng.standard_normal((4, 6))},
    )
    assert report.max_error > 1e-2, str(report)


def test_gradcheck_reports_worst_entry(rng):
    def wrong_backward(dout, cache):
        grad = 2.0 * cache.copy() * dout
        grad[1, 2] += 1.0
        return {"x": grad}

    report = check_gradients(
        lambda i: (i["x"] ** 2, i["x"]),
        wrong_backward,
        {"x": rng.standard_normal((3, 4))},
    )
    assert report["x"].index == (1, 2)
    assert "x" in str(report)


def test_gradcheck_zero_gradient_judged_by_absolute_error(rng):
    def constant_forward(i):
        return i["x"].sum() * 0.0 + 1.0, None

    report = check_gradients(
        constant_forward,
        lambda d, c: {"x": numpy.zeros(3)},
        {"x": rng.standard_normal(3)},
    )
    assert report.max_error < 1e-9


def test_gradcheck_restores_inputs(rng):
    x = rng.standard_normal((2, 3))
    before = x.copy()
    check_gradients(
        lambda i: softmax_forward(i["x"]),
        lambda d, c: {"x": c[0] * (d - (d * c[0]).sum(-1, keepdims=True))},
        {"x": x},
    )
    numpy.testing.assert_array_equal(x, before)


def test_gradcheck_requires_float64(rng):
    import pytest

    with pytest.raises(TypeError, match="float64"):
        check_gradients(
            lambda i: softmax_forward(i["x"]),
            lambda d, c: {},
            {"x": rng.standard_normal(3).astype(numpy.float32)},
        )
