"""Numerically stable softmax along one axis. Derivation: docs/derivations/softmax.md."""

from ..backend import array_module


def softmax_forward(x, axis=-1):
    """Return y = exp(x) / Σ exp(x) along `axis`, and cache = (y, axis).

    x: any shape. The row maximum is subtracted first so exp never overflows. A row
    whose entries are all -inf (every position masked out) gives a row of zeros
    instead of NaN; attention relies on this for fully masked query rows.
    The cache keeps y only: the backward pass needs nothing else.
    """
    xp = array_module(x)
    row_max = x.max(axis=axis, keepdims=True)
    row_max = xp.where(xp.isfinite(row_max), row_max, 0)
    exps = xp.exp(x - row_max)
    row_sum = exps.sum(axis=axis, keepdims=True)
    row_sum = xp.where(row_sum > 0, row_sum, 1)
    y = exps / row_sum
    return y, (y, axis)


def softmax_backward(dout, cache):
    """Return dx = y * (dout - Σ_j dout_j y_j), the sum running along the softmax axis.

    The second term is the cross term: every output depends on every input of its
    row through the shared normaliser. Entries with y = 0 get a zero gradient.
    """
    y, axis = cache
    row_dot = (dout * y).sum(axis=axis, keepdims=True)
    return y * (dout - row_dot)
