import numpy
import pytest

from conftest import assert_gradients_close
from nptransformer.op_checks import check_multi_head_attention
from nptransformer.ops import attention_forward, multi_head_attention_forward


def _params(rng, D):
    return {
        name: rng.standard_normal((D, D) if name.startswith("W") else D)
        for name in ("Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo")
    }


def test_mha_head_uses_its_column_block(rng):
    """Head h must use columns h*Dh:(h+1)*Dh of Wq, Wk, Wv and rows of Wo."""
    B, T, D, H = 2, 3, 6, 3
    Dh = D // H
    params = _params(rng, D)
    x = rng.standard_normal((B, T, D))
    out, _ = multi_head_attention_forward(x, x, params, H)

    expected = numpy.zeros((B, T, D))
    for h in range(H):
        cols = slice(h * Dh, (h + 1) * Dh)
        q = x @ params["Wq"][:, cols] + params["bq"][cols]
        k = x @ params["Wk"][:, cols] + params["bk"][cols]
        v = x @ params["Wv"][:, cols] + params["bv"][cols]
        head, _ = attention_forward(q, k, v)
        expected += head @ params["Wo"][cols, :]
    expected += params["bo"]
    numpy.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_mha_key_bias_gradient_is_zero(rng):
    D = 8
    params = _params(rng, D)
    x = rng.standard_normal((2, 5, D))
    from nptransformer.ops import multi_head_attention_backward

    out, cache = multi_head_attention_forward(x, x, params, 2)
    _, _, dparams = multi_head_attention_backward(rng.standard_normal(out.shape), cache)
    assert numpy.abs(dparams["bk"]).max() < 1e-12


def test_mha_shapes_and_weights(rng):
    params = {k: v.astype(numpy.float32) for k, v in _params(rng, 8).items()}
    x_q = rng.standard_normal((2, 3, 8)).astype(numpy.float32)
    x_kv = rng.standard_normal((2, 5, 8)).astype(numpy.float32)
    out, cache = multi_head_attention_forward(x_q, x_kv, params, 4)
    assert out.shape == (2, 3, 8)
    assert out.dtype == numpy.float32
    assert cache["weights"].shape == (2, 4, 3, 5)


def test_mha_rejects_indivisible_heads(rng):
    x = rng.standard_normal((1, 2, 6))
    with pytest.raises(ValueError, match="d_model 6 is not divisible by num_heads 4"):
        multi_head_attention_forward(x, x, _params(rng, 6), 4)


def test_mha_gradients(rng):
    # Expected error ~1e-9; bk is judged against the floor (its true gradient is 0).
    assert_gradients_close(check_multi_head_attention(rng), 1e-7)
