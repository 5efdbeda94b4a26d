"""Embedding lookup: out[...] = W[ids[...]]. Derivation: docs/derivations/embedding.md.

Dimensions: V vocabulary, D embedding width.
"""

from ..backend import array_module, scatter_add


def embedding_forward(ids, W):
    """Look up one row of W per id.

    ids: integer array (...), W: (V, D). Returns out (..., D) and cache = (ids, W).
    The ids must lie in [0, V); the model checks this before calling, because NumPy
    would silently wrap a negative id to the end of the table.
    """
    out = W[ids]
    return out, (ids, W)


def embedding_backward(dout, cache):
    """Return dW (V, D): row v is the sum of dout over every position whose id is v.

    A token that appears several times in the batch collects all of its gradients,
    so this uses a scatter-add rather than an indexed assignment.
    """
    ids, W = cache
    xp = array_module(W)
    dW = xp.zeros_like(W)
    scatter_add(dW, ids.reshape(-1), dout.reshape(-1, W.shape[1]))
    return dW
