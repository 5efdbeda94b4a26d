"""Multi-head attention (Vaswani et al., 2017, section 3.2.2).

Dimensions: B batch, Tq query length, Tk key length, D d_model, H heads, Dh = D / H.
Head h uses columns h*Dh:(h+1)*Dh of Wq, Wk, Wv and the same rows of Wo, the layout
PyTorch uses. Derivation: docs/derivations/multi_head_attention.md.
"""

from .attention import attention_backward, attention_forward
from .linear import linear_backward, linear_forward

PARAMETER_NAMES = ("Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo")


def _split_heads(x, num_heads):
    B, T, D = x.shape
    return x.reshape(B, T, num_heads, D // num_heads).transpose(0, 2, 1, 3)


def _merge_heads(x):
    B, H, T, Dh = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, H * Dh)


def multi_head_attention_forward(x_q, x_kv, params, num_heads, mask=None):
    """Project queries, keys and values, attend in H heads, merge and project out.

    x_q: (B, Tq, D) the positions that ask; x_kv: (B, Tk, D) the positions attended
    to (the same array for self-attention). params: dict with Wq, Wk, Wv, Wo of shape
    (D, D) and bq, bk, bv, bo of shape (D,). mask: boolean, broadcastable to
    (B, H, Tq, Tk), True = may attend; key padding is (B, 1, 1, Tk), a causal mask
    (Tq, Tk). Returns out (B, Tq, D) and the cache of every step. The cache's
    "weights" entry (B, H, Tq, Tk) contains the attention weights, for plotting.
    """
    D = x_q.shape[-1]
    if D % num_heads != 0:
        raise ValueError(
            f"d_model {D} is not divisible by num_heads {num_heads}; "
            "choose a head count that divides d_model"
        )

    # 1. projections: (B, T, D) each
    q, q_cache = linear_forward(x_q, params["Wq"], params["bq"])
    k, k_cache = linear_forward(x_kv, params["Wk"], params["bk"])
    v, v_cache = linear_forward(x_kv, params["Wv"], params["bv"])

    # 2. split heads: (B, H, T, Dh)
    q = _split_heads(q, num_heads)
    k = _split_heads(k, num_heads)
    v = _split_heads(v, num_heads)

    # 3. attention in every head at once: (B, H, Tq, Dh)
    heads, attention_cache = attention_forward(q, k, v, mask)

    # 4. merge heads: (B, Tq, D)
    merged = _merge_heads(heads)

    # 5. output projection: (B, Tq, D)
    out, out_cache = linear_forward(merged, params["Wo"], params["bo"])

    cache = {
        "q": q_cache,
        "k": k_cache,
        "v": v_cache,
        "attention": attention_cache,
        "out": out_cache,
        "num_heads": num_heads,
        "weights": attention_cache[3],
    }
    return out, cache


def multi_head_attention_backward(dout, cache):
    """Return dx_q (B, Tq, D), dx_kv (B, Tk, D) and dparams (dict, keys as params).

    For self-attention the caller passed one array as both x_q and x_kv, so its
    gradient is dx_q + dx_kv. The true gradient of bk is zero, because adding a bias
    to every key shifts each softmax row by a constant. It comes out as round-off.
    """
    num_heads = cache["num_heads"]

    # 5. out = merged Wo + bo
    dmerged, dWo, dbo = linear_backward(dout, cache["out"])

    # 4. merge heads
    dheads = _split_heads(dmerged, num_heads)

    # 3. attention per head
    dq, dk, dv = attention_backward(dheads, cache["attention"])

    # 2. split heads
    dq = _merge_heads(dq)
    dk = _merge_heads(dk)
    dv = _merge_heads(dv)

    # 1. projections
    dx_q, dWq, dbq = linear_backward(dq, cache["q"])
    dx_kv, dWk, dbk = linear_backward(dk, cache["k"])
    dx_v, dWv, dbv = linear_backward(dv, cache["v"])
    dx_kv += dx_v

    dparams = {
        "Wq": dWq,
        "bq": dbq,
        "Wk": dWk,
        "bk": dbk,
        "Wv": dWv,
        "bv": dbv,
        "Wo": dWo,
        "bo": dbo,
    }
    return dx_q, dx_kv, dparams
