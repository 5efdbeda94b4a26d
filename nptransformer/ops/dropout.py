"""Inverted dropout. Derivation: docs/derivations/dropout.md."""


def dropout_forward(x, p, rng, training=True):
    """Zero each entry of x with probability p and scale the survivors by 1 / (1 - p).

    x: any shape; p: drop probability in [0, 1); rng: a `numpy.random.Generator` (or
    CuPy's equivalent on the GPU backend). The scaling keeps the expected output equal
    to x, so evaluation needs no rescaling. When not training, or when p == 0, the op
    is the identity and draws no random numbers. Returns out and cache = the scaled
    keep-mask (same shape and dtype as x), or None for the identity.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability p must be in [0, 1), got {p!r}")
    if not training or p == 0.0:
        return x, None
    # Generators draw float32 or float64 only; float32 draws serve narrower types too.
    draw_dtype = x.dtype if x.dtype == "float64" else "float32"
    keep = rng.random(x.shape, dtype=draw_dtype) >= p
    scale = keep * x.dtype.type(1.0 / (1.0 - p))
    return x * scale, scale


def dropout_backward(dout, cache):
    """Return dx = dout * mask / (1 - p): the gradient passes only where x was kept."""
    scale = cache
    if scale is None:
        return dout
    return dout * scale
