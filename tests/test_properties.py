"""Property tests over the ops: random small shapes, masks, dtypes and magnitudes.

Every forward and backward output must be finite and have the right shape, and
gradient checks on random shapes must pass. The settings keep this steady on a busy
2-core machine: no per-example deadline, at most 30 examples per property, and a
fixed example sequence on CI.
"""

import os

import numpy
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from conftest import assert_gradients_close
from nptransformer import check_gradients
from nptransformer.ops import (
    attention_backward,
    attention_forward,
    cross_entropy_backward,
    cross_entropy_forward,
    layernorm_backward,
    layernorm_forward,
    linear_backward,
    linear_forward,
    multi_head_attention_backward,
    multi_head_attention_forward,
    relu_backward,
    relu_forward,
    softmax_backward,
    softmax_forward,
)

PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "30")),
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
)
dtypes = st.sampled_from([numpy.float32, numpy.float64])
magnitudes = st.sampled_from([1e-4, 1.0, 1e2, 1e4])
seeds = st.integers(0, 2**31 - 1)
sizes = st.integers(1, 5)


def finite(*arrays):
    return all(numpy.isfinite(a).all() for a in arrays if a is not None)


@PROPERTY_SETTINGS
@given(
    seed=seeds,
    dtype=dtypes,
    scale=magnitudes,
    B=sizes,
    T=sizes,
    V=st.integers(2, 6),
    axis=st.sampled_from([0, 1, -1]),
)
def test_softmax_finite(seed, dtype, scale, B, T, V, axis):
    rng = numpy.random.default_rng(seed)
    x = (scale * rng.standard_normal((B, T, V))).astype(dtype)
    out, cache = softmax_forward(x, axis=axis)
    dx = softmax_backward(rng.standard_normal(x.shape).astype(dtype), cache)
    assert out.shape == dx.shape == x.shape
    assert out.dtype == dtype
    assert finite(out, dx)


@PROPERTY_SETTINGS
@given(
    seed=seeds, dtype=dtypes, scale=magnitudes, B=sizes, T=sizes, D=st.integers(1, 6)
)
def test_layernorm_finite(seed, dtype, scale, B, T, D):
    rng = numpy.random.default_rng(seed)
    x = (scale * rng.standard_normal((B, T, D))).astype(dtype)
    gamma, beta = (
        rng.standard_normal(D).astype(dtype),
        rng.standard_normal(D).astype(dtype),
    )
    out, cache = layernorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = layernorm_backward(
        rng.standard_normal(x.shape).astype(dtype), cache
    )
    assert dx.shape == x.shape
    assert dgamma.shape == (D,)
    assert dbeta.shape == (D,)
    assert finite(out, dx, dgamma, dbeta)


@PROPERTY_SETTINGS
@given(
    seed=seeds,
    dtype=dtypes,
    scale=magnitudes,
    B=sizes,
    Tq=sizes,
    Tk=sizes,
    Dk=st.integers(1, 4),
    fully_masked=st.booleans(),
)
def test_attention_finite_with_random_masks(
    seed, dtype, scale, B, Tq, Tk, Dk, fully_masked
):
    rng = numpy.random.default_rng(seed)
    q, k, v = (
        (scale * rng.standard_normal((B, n, Dk))).astype(dtype) for n in (Tq, Tk, Tk)
    )
    mask = rng.random((B, Tq, Tk)) > 0.5
    if fully_masked:
        mask[0, 0] = False
    out, cache = attention_forward(q, k, v, mask)
    dq, dk, dv = attention_backward(rng.standard_normal(out.shape).astype(dtype), cache)
    assert out.shape == (B, Tq, Dk)
    assert (dq.shape, dk.shape, dv.shape) == (q.shape, k.shape, v.shape)
    assert finite(out, dq, dk, dv)
    rows_with_no_key = ~mask.any(axis=-1)
    assert numpy.all(out[rows_with_no_key] == 0)


@PROPERTY_SETTINGS
@given(
    seed=seeds,
    dtype=dtypes,
    scale=magnitudes,
    B=sizes,
    T=sizes,
    V=st.integers(2, 6),
    smoothing=st.sampled_from([0.0, 0.1, 0.5]),
)
def test_cross_entropy_finite(seed, dtype, scale, B, T, V, smoothing):
    rng = numpy.random.default_rng(seed)
    logits = (scale * rng.standard_normal((B, T, V))).astype(dtype)
    targets = rng.integers(0, V, size=(B, T))
    loss, cache = cross_entropy_forward(logits, targets, smoothing, ignore_index=0)
    dlogits = cross_entropy_backward(cache)
    assert dlogits.shape == logits.shape
    assert finite(numpy.asarray(loss), dlogits)
    assert float(loss) >= 0.0


@PROPERTY_SETTINGS
@given(
    seed=seeds, B=sizes, Tq=sizes, Tk=sizes, H=st.integers(1, 3), Dh=st.integers(1, 3)
)
def test_multi_head_attention_gradients(seed, B, Tq, Tk, H, Dh):
    rng = numpy.random.default_rng(seed)
    D = H * Dh
    names = ("Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo")
    inputs = {n: rng.uniform(-1, 1, (D, D) if n[0] == "W" else D) for n in names}
    inputs["x_q"] = rng.uniform(-3, 3, (B, Tq, D))
    inputs["x_kv"] = rng.uniform(-3, 3, (B, Tk, D))
    mask = rng.random((B, 1, 1, Tk)) > 0.3

    def forward(i):
        return multi_head_attention_forward(
            i["x_q"], i["x_kv"], {n: i[n] for n in names}, H, mask
        )

    def backward(dout, cache):
        dx_q, dx_kv, dparams = multi_head_attention_backward(dout, cache)
        return dict(dparams, x_q=dx_q, x_kv=dx_kv)

    # Expected error ~1e-9; inputs of magnitude at most 3 keep finite differences sharp.
    assert_gradients_close(check_gradients(forward, backward, inputs), 1e-7)


@PROPERTY_SETTINGS
@given(seed=seeds, N=sizes, d_in=sizes, d_out=sizes)
def test_linear_relu_gradients(seed, N, d_in, d_out):
    rng = numpy.random.default_rng(seed)
    inputs = {
        "x": rng.uniform(-3, 3, (N, d_in)),
        "W": rng.uniform(-3, 3, (d_in, d_out)),
        "b": rng.uniform(-3, 3, d_out),
    }
    pre_activation, _ = linear_forward(inputs["x"], inputs["W"], inputs["b"])
    # Stay away from ReLU's kink, where finite differences straddle two slopes.
    assume(numpy.abs(pre_activation).min() > 0.05)

    def forward(i):
        hidden, linear_cache = linear_forward(i["x"], i["W"], i["b"])
        out, relu_cache = relu_forward(hidden)
        return out, (linear_cache, relu_cache)

    def backward(dout, cache):
        linear_cache, relu_cache = cache
        dx, dW, db = linear_backward(relu_backward(dout, relu_cache), linear_cache)
        return {"x": dx, "W": dW, "b": db}

    assert_gradients_close(check_gradients(forward, backward, inputs), 1e-7)


@PROPERTY_SETTINGS
@given(seed=seeds, B=sizes, T=sizes, D=st.integers(2, 6))
def test_layernorm_gradients(seed, B, T, D):
    rng = numpy.random.default_rng(seed)
    inputs = {
        "x": rng.uniform(-3, 3, (B, T, D)),
        "gamma": rng.uniform(-3, 3, D),
        "beta": rng.uniform(-3, 3, D),
    }
    # A row of nearly equal values has a tiny variance and so a huge curvature, where
    # central differences lose accuracy. Such rows cannot test the backward pass.
    assume(inputs["x"].std(axis=-1).min() > 0.3)

    def backward(dout, cache):
        dx, dgamma, dbeta = layernorm_backward(dout, cache)
        return {"x": dx, "gamma": dgamma, "beta": dbeta}

    report = check_gradients(
        lambda i: layernorm_forward(i["x"], i["gamma"], i["beta"]), backward, inputs
    )
    assert_gradients_close(report, 1e-7)
