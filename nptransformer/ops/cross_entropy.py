"""Cross-entropy with label smoothing and ignored positions.

Dimensions: N positions (all leading axes flattened), V classes.
Derivation: docs/derivations/cross_entropy.md.
"""

from ..backend import array_module


def cross_entropy_forward(logits, targets, label_smoothing=0.0, ignore_index=None):
    """Return the mean cross-entropy over positions whose target is not ignore_index.

    logits: (..., V) float; targets: integer (...). The target distribution is
    (1 - ε) onehot(target) + ε / V over all V classes, ε = label_smoothing in [0, 1].
    NOTE: some implementations spread ε over the V - 1 wrong classes instead; this is
    PyTorch's convention, so the two losses can be compared directly.
    Ignored positions add nothing to the loss or gradient and are not counted in
    the mean; with every position ignored the loss is 0. Returns the loss as a scalar
    of the logits' dtype (a NumPy scalar, or a 0-d array on CuPy) and
    cache = (probabilities (N, V), targets with ignored entries set to 0, keep-mask,
    count, ε, leading shape). The probabilities are cached because the gradient is probabilities
    minus the target distribution.
    """
    xp = array_module(logits)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    if not hasattr(targets, "dtype"):
        raise TypeError(
            f"targets must be an integer array, got {type(targets).__name__}"
        )
    if targets.shape != logits.shape[:-1]:
        raise ValueError(
            f"targets of shape {tuple(targets.shape)} do not match logits of shape "
            f"{tuple(logits.shape)}; expected targets of shape {tuple(logits.shape[:-1])}"
        )
    if targets.dtype.kind not in "iu":
        raise TypeError(f"targets must be integer class ids, got dtype {targets.dtype}")
    lead_shape = targets.shape
    V = logits.shape[-1]
    logits = logits.reshape(-1, V)
    targets = targets.reshape(-1)

    if ignore_index is None:
        keep = xp.ones(targets.shape, dtype=bool)
    else:
        keep = targets != ignore_index
    safe_targets = xp.where(keep, targets, 0)
    bad = keep & ((targets < 0) | (targets >= V))
    if bool(bad.any()):
        first = int(targets[xp.argmax(bad)])
        raise ValueError(
            f"target id {first} is outside the {V} classes [0, {V}); "
            "check the targets or the vocabulary size"
        )
    count = int(keep.sum())

    # 1. log-softmax, stable: log p = z - log Σ exp z with z = logits - max
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exps = xp.exp(shifted)
    sum_exps = exps.sum(axis=-1, keepdims=True)
    log_probs = shifted - xp.log(sum_exps)
    probabilities = exps / sum_exps

    # 2. per-position loss: -(1 - ε) log p[target] - (ε / V) Σ_c log p[c]
    rows = xp.arange(targets.shape[0])
    target_log_probs = log_probs[rows, safe_targets]
    losses = -(1.0 - label_smoothing) * target_log_probs
    if label_smoothing > 0.0:
        losses = losses - (label_smoothing / V) * log_probs.sum(axis=-1)

    # 3. mean over kept positions
    # where(), not a product: an ignored row may hold -inf logits, and inf * 0 is NaN.
    loss = xp.where(keep, losses, 0).sum() / max(count, 1)
    loss = loss.astype(logits.dtype)
    cache = (probabilities, safe_targets, keep, count, label_smoothing, lead_shape)
    return loss, cache


def cross_entropy_backward(cache, dloss=1.0):
    """Return dlogits (..., V) = dloss * (p - target distribution) / count on kept rows.

    Ignored rows get zero. The cache comes first because the loss ends the graph and
    its upstream gradient defaults to 1.
    """
    probabilities, safe_targets, keep, count, label_smoothing, lead_shape = cache
    xp = array_module(probabilities)
    N, V = probabilities.shape
    dtype = probabilities.dtype

    dlogits = probabilities.copy()
    if label_smoothing > 0.0:
        dlogits -= dtype.type(label_smoothing / V)
    dlogits[xp.arange(N), safe_targets] -= dtype.type(1.0 - label_smoothing)
    dlogits *= (keep * (dloss / max(count, 1)))[:, None].astype(dtype)
    return dlogits.reshape(*lead_shape, V)
