"""Layer normalisation over the last axis. Derivation: docs/derivations/layernorm.md.

Dimensions: D is the normalised (last) axis; every leading axis is a separate row.
"""

from ..backend import array_module


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """Normalise each row of x to zero mean and unit variance, then scale and shift.

    x: (..., D), gamma: (D,), beta: (D,). The variance is the biased one (divided by
    D, as in PyTorch's LayerNorm). Returns out (..., D) and
    cache = (x_hat, inv_std, gamma): the normalised input (..., D) and 1/sqrt(var + eps)
    (..., 1). Caching x_hat costs one copy of x but saves recomputing mean and
    variance in the backward pass.
    """
    xp = array_module(x)
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    variance = (centered * centered).mean(axis=-1, keepdims=True)
    inv_std = 1.0 / xp.sqrt(variance + eps)
    x_hat = centered * inv_std
    out = x_hat * gamma + beta
    return out, (x_hat, inv_std, gamma)


def layernorm_backward(dout, cache):
    """Return dx (..., D), dgamma (D,) and dbeta (D,).

    With g = dout * gamma, the input gradient of each row is
    dx = inv_std * (g - mean(g) - x_hat * mean(g * x_hat)):
    the mean term comes from the mean's dependence on x, the last term from the
    variance's.
    """
    x_hat, inv_std, gamma = cache
    D = x_hat.shape[-1]

    # Step 2 backward: out = x_hat * gamma + beta.
    dgamma = (dout * x_hat).reshape(-1, D).sum(axis=0)
    dbeta = dout.reshape(-1, D).sum(axis=0)
    dx_hat = dout * gamma

    # Step 1 backward: x_hat = (x - mean) * inv_std, with mean and inv_std functions of x.
    mean_dx_hat = dx_hat.mean(axis=-1, keepdims=True)
    mean_dx_hat_x_hat = (dx_hat * x_hat).mean(axis=-1, keepdims=True)
    dx = inv_std * (dx_hat - mean_dx_hat - x_hat * mean_dx_hat_x_hat)
    return dx, dgamma, dbeta
