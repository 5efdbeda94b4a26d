"""Rectified linear unit: y = max(x, 0). Derivation: docs/derivations/relu.md."""

from ..backend import array_module


def relu_forward(x):
    """Return out = max(x, 0) with the shape of x, and cache = the boolean mask x > 0.

    The mask is the only thing the backward pass needs; it takes one byte per entry,
    a quarter of a float32 copy of x.
    """
    xp = array_module(x)
    positive = x > 0
    out = xp.maximum(x, 0)  # not x * positive, which turns -inf into NaN
    return out, positive


def relu_backward(dout, cache):
    """Return dx = dout where x > 0, else 0 (the subgradient at 0 is taken as 0)."""
    positive = cache
    return dout * positive
