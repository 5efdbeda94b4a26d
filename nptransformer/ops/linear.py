"""Linear (affine) map: y = x W + b.

Dimensions: B batch, S source length, T target length, D d_model, H heads,
Dh head size, F d_ff, V vocabulary. Derivation: docs/derivations/linear.md.
"""


def linear_forward(x, W, b):
    """Compute y = x @ W + b over the last axis of x.

    x: (..., d_in), W: (d_in, d_out), b: (d_out,) or None.
    Returns out (..., d_out) and cache = (x, W, has_bias). The cache keeps the input
    by reference (no copy) because dW needs it.
    """
    out = x @ W
    if b is not None:
        out += b
    cache = (x, W, b is not None)
    return out, cache


def linear_backward(dout, cache):
    """Return dx (..., d_in), dW (d_in, d_out) and db (d_out,) or None.

    dx = dout Wᵀ, dW = xᵀ dout and db = Σ dout, where the transposes and sums run over
    every leading axis of x (batch and positions alike).
    """
    x, W, has_bias = cache
    d_in, d_out = W.shape

    # Forward: out = x @ W + b.
    dx = dout @ W.T
    dW = x.reshape(-1, d_in).T @ dout.reshape(-1, d_out)
    db = dout.reshape(-1, d_out).sum(axis=0) if has_bias else None
    return dx, dW, db
