"""A float64 gradient check for every op, shared by the tests and `nptransformer gradcheck`.

Each entry builds small random inputs, runs `check_gradients` with a random upstream
gradient and returns the GradientReport. Inputs have magnitude about 1 and stay away
from ReLU's kink, where finite differences are meaningless. Every array is drawn on
the host and moved to the active backend, so the same checks run on a GPU.
"""

import numpy

from .backend import get_backend
from .gradcheck import check_gradients
from .ops import (
    attention_backward,
    attention_forward,
    cross_entropy_backward,
    cross_entropy_forward,
    dropout_backward,
    dropout_forward,
    embedding_backward,
    embedding_forward,
    layernorm_backward,
    layernorm_forward,
    linear_backward,
    linear_forward,
    multi_head_attention_backward,
    multi_head_attention_forward,
    relu_backward,
    relu_forward,
    softmax_backward,
    softmax_forward,
)


def _on_backend(arrays):
    """Move a dict of NumPy arrays (or one array) to the active backend."""
    xp = get_backend()
    if isinstance(arrays, dict):
        return {name: xp.asarray(value) for name, value in arrays.items()}
    return xp.asarray(arrays)


def check_linear(rng):
    inputs = {
        "x": rng.standard_normal((2, 3, 4)),
        "W": rng.standard_normal((4, 5)),
        "b": rng.standard_normal(5),
    }

    def backward(dout, cache):
        dx, dW, db = linear_backward(dout, cache)
        return {"x": dx, "W": dW, "b": db}

    return check_gradients(
        lambda i: linear_forward(i["x"], i["W"], i["b"]), backward, _on_backend(inputs)
    )


def check_relu(rng):
    x = rng.standard_normal((3, 7))
    x = numpy.where(numpy.abs(x) < 0.1, 0.5, x)  # keep finite differences off the kink
    return check_gradients(
        lambda i: relu_forward(i["x"]),
        lambda dout, cache: {"x": relu_backward(dout, cache)},
        _on_backend({"x": x}),
    )


def check_softmax(rng):
    return check_gradients(
        lambda i: softmax_forward(i["x"], axis=1),
        lambda dout, cache: {"x": softmax_backward(dout, cache)},
        _on_backend({"x": rng.standard_normal((2, 5, 3))}),
    )


def check_layernorm(rng):
    inputs = {
        "x": rng.standard_normal((2, 3, 6)),
        "gamma": rng.standard_normal(6),
        "beta": rng.standard_normal(6),
    }

    def backward(dout, cache):
        dx, dgamma, dbeta = layernorm_backward(dout, cache)
        return {"x": dx, "gamma": dgamma, "beta": dbeta}

    return check_gradients(
        lambda i: layernorm_forward(i["x"], i["gamma"], i["beta"]),
        backward,
        _on_backend(inputs),
    )


def check_embedding(rng):
    ids = _on_backend(numpy.array([[0, 3, 3], [1, 3, 4]]))  # 3 repeated, 2 unused
    return check_gradients(
        lambda i: embedding_forward(ids, i["W"]),
        lambda dout, cache: {"W": embedding_backward(dout, cache)},
        _on_backend({"W": rng.standard_normal((5, 4))}),
    )


def check_dropout(rng):
    seed = int(rng.integers(1 << 30))

    def forward(i):
        # A fresh generator with a fixed seed draws the same mask on every call. It
        # comes from the active backend, so the mask is created where x is.
        return dropout_forward(i["x"], 0.3, get_backend().random.default_rng(seed))

    return check_gradients(
        forward,
        lambda dout, cache: {"x": dropout_backward(dout, cache)},
        _on_backend({"x": rng.standard_normal((4, 5))}),
    )


def check_attention(rng):
    mask = rng.random((2, 1, 4, 5)) > 0.3
    mask[0, 0, 2] = False  # one fully masked query row
    mask = _on_backend(mask)
    inputs = {
        "q": rng.standard_normal((2, 3, 4, 6)),
        "k": rng.standard_normal((2, 3, 5, 6)),
        "v": rng.standard_normal((2, 3, 5, 2)),
    }

    def backward(dout, cache):
        dq, dk, dv = attention_backward(dout, cache)
        return {"q": dq, "k": dk, "v": dv}

    return check_gradients(
        lambda i: attention_forward(i["q"], i["k"], i["v"], mask),
        backward,
        _on_backend(inputs),
    )


def check_multi_head_attention(rng):
    D, H = 8, 2
    names = ("Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo")
    inputs = {
        name: 0.5 * rng.standard_normal((D, D) if name.startswith("W") else D)
        for name in names
    }
    inputs["x_q"] = rng.standard_normal((2, 3, D))
    inputs["x_kv"] = rng.standard_normal((2, 4, D))
    key_padding = numpy.array([[True, True, True, False], [True, True, False, False]])
    mask = _on_backend(key_padding[:, None, None, :])  # (B, 1, 1, Tk)

    def forward(i):
        params = {name: i[name] for name in names}
        return multi_head_attention_forward(i["x_q"], i["x_kv"], params, H, mask)

    def backward(dout, cache):
        dx_q, dx_kv, dparams = multi_head_attention_backward(dout, cache)
        return dict(dparams, x_q=dx_q, x_kv=dx_kv)

    return check_gradients(forward, backward, _on_backend(inputs))


def check_cross_entropy(rng):
    targets = rng.integers(0, 6, size=(3, 4))
    targets[0, :2] = 0  # ignored positions (ignore_index 0)
    targets = _on_backend(targets)

    return check_gradients(
        lambda i: cross_entropy_forward(i["logits"], targets, 0.1, ignore_index=0),
        lambda dloss, cache: {"logits": cross_entropy_backward(cache, dloss)},
        _on_backend({"logits": 2.0 * rng.standard_normal((3, 4, 6))}),
    )


OP_CHECKS = {
    "linear": check_linear,
    "relu": check_relu,
    "softmax": check_softmax,
    "layernorm": check_layernorm,
    "embedding": check_embedding,
    "dropout": check_dropout,
    "attention": check_attention,
    "multi_head_attention": check_multi_head_attention,
    "cross_entropy": check_cross_entropy,
}


def run_all(seed=0):
    """Run every op's check; return a dict op name -> GradientReport."""
    return {
        name: check(numpy.random.default_rng(seed)) for name, check in OP_CHECKS.items()
    }
