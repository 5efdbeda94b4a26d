"""Scaled dot-product attention with a boolean mask.

Dimensions: Tq query positions, Tk key positions, Dk query/key width, Dv value width;
"..." is any number of leading axes shared by q, k and v (batch, heads).
Derivation: docs/derivations/attention.md.
"""

import math

from ..backend import array_module
from .softmax import softmax_backward, softmax_forward


def _check_mask(mask, scores_shape, xp):
    if mask.dtype != bool:
        raise TypeError(
            f"mask must be a boolean array (True = may attend), got dtype {mask.dtype}"
        )
    try:
        xp.broadcast_shapes(mask.shape, scores_shape)
    except ValueError:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} cannot broadcast to the attention "
            f"scores of shape {tuple(scores_shape)} (..., Tq, Tk)"
        ) from None


def attention_forward(q, k, v, mask=None):
    """Compute softmax(q kᵀ / sqrt(Dk)) v, with masked keys given zero weight.

    q: (..., Tq, Dk), k: (..., Tk, Dk), v: (..., Tk, Dv); mask: boolean, broadcastable
    to (..., Tq, Tk), True where the query may attend to the key. A query row with no
    key to attend to gets zero weights and a zero output row.
    Returns out (..., Tq, Dv) and cache = (q, k, v, weights, softmax cache, scale). The
    weights (..., Tq, Tk) are kept because both the v gradient and the softmax
    gradient need them; recomputing them would cost a second q kᵀ product.
    """
    xp = array_module(q)
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"query width {q.shape[-1]} does not match key width {k.shape[-1]}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"key length {k.shape[-2]} does not match value length {v.shape[-2]}"
        )
    scale = 1.0 / math.sqrt(q.shape[-1])

    # 1. scores = q kᵀ / sqrt(Dk): (..., Tq, Tk)
    scores = (q @ k.swapaxes(-1, -2)) * q.dtype.type(scale)

    # 2. masked keys get -inf, so softmax gives them exactly zero weight
    if mask is not None:
        _check_mask(mask, scores.shape, xp)
        scores = xp.where(mask, scores, -xp.inf).astype(q.dtype, copy=False)

    # 3. weights = softmax over keys: (..., Tq, Tk)
    weights, softmax_cache = softmax_forward(scores, axis=-1)

    # 4. out = weights v: (..., Tq, Dv)
    out = weights @ v
    return out, (q, k, v, weights, softmax_cache, scale)


def attention_backward(dout, cache):
    """Return dq, dk, dv with the shapes of q, k and v.

    dv = weightsᵀ dout; dweights = dout vᵀ; dscores = softmax backward of dweights
    (zero on masked keys, because their weight is zero); dq = dscores k / sqrt(Dk)
    and dk = dscoresᵀ q / sqrt(Dk).
    """
    q, k, v, weights, softmax_cache, scale = cache

    # 4. out = weights v
    dv = weights.swapaxes(-1, -2) @ dout
    dweights = dout @ v.swapaxes(-1, -2)

    # 3. weights = softmax(scores); 2. masking needs no step: masked weights are 0
    dscores = softmax_backward(dweights, softmax_cache)

    # 1. scores = q kᵀ * scale
    dscores = dscores * q.dtype.type(scale)
    dq = dscores @ k
    dk = dscores.swapaxes(-1, -2) @ q
    return dq, dk, dv
