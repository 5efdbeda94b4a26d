"""Layers: parameters and their gradients, composed from the ops.

Each layer's `forward(...) -> (out, cache)` is pure: the cache travels with the caller,
so two forwards can be in flight at once. `backward(dout, cache)` returns the input
gradient and adds the parameter gradients into `self.grads` (so weights used twice
collect both uses). No new math lives here; every formula is in `nptransformer.ops`.

Dimensions: B batch, T length, D d_model, H heads, F d_ff, V vocabulary.
"""

import math

from .backend import get_backend
from .ops import (
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
)


class Layer:
    """Base class: `params` and `grads` are dicts of same-shaped arrays; children nest."""

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.children = {}

    def add_parameter(self, name, array):
        self.params[name] = array
        self.grads[name] = get_backend().zeros_like(array)

    def named_parameters(self, prefix=""):
        """Yield (dotted name, parameter, gradient) for this layer and its children."""
        for name, array in self.params.items():
            yield prefix + name, array, self.grads[name]
        for child_name, child in self.children.items():
            yield from child.named_parameters(f"{prefix}{child_name}.")


def _uniform(rng, shape, limit, dtype):
    """Draw U(-limit, limit) on the host, then move it to the active backend."""
    xp = get_backend()
    return xp.asarray(rng.uniform(-limit, limit, size=shape).astype(dtype))


def xavier_uniform(rng, fan_in, fan_out, dtype):
    """Glorot and Bengio (2010) initialisation: U(±sqrt(6 / (fan_in + fan_out))).

    NOTE: the paper does not state its initialisation; Xavier-uniform is the common
    choice for Transformer weight matrices.
    """
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return _uniform(rng, (fan_in, fan_out), limit, dtype)


class LayerNorm(Layer):
    """LayerNorm over the last axis with gain `gamma` (ones) and bias `beta` (zeros)."""

    def __init__(self, d_model, eps, dtype):
        super().__init__()
        xp = get_backend()
        self.eps = eps
        self.add_parameter("gamma", xp.ones(d_model, dtype=dtype))
        self.add_parameter("beta", xp.zeros(d_model, dtype=dtype))

    def forward(self, x):
        return layernorm_forward(x, self.params["gamma"], self.params["beta"], self.eps)

    def backward(self, dout, cache):
        dx, dgamma, dbeta = layernorm_backward(dout, cache)
        self.grads["gamma"] += dgamma
        self.grads["beta"] += dbeta
        return dx


class MultiHeadAttention(Layer):
    """Multi-head attention with parameters Wq, bq, Wk, bk, Wv, bv, Wo, bo.

    NOTE: the paper's projections have no biases; these follow PyTorch's default.
    """

    def __init__(self, d_model, num_heads, rng, dtype):
        super().__init__()
        xp = get_backend()
        self.num_heads = num_heads
        for name in ("q", "k", "v", "o"):
            self.add_parameter(f"W{name}", xavier_uniform(rng, d_model, d_model, dtype))
            self.add_parameter(f"b{name}", xp.zeros(d_model, dtype=dtype))

    def forward(self, x_q, x_kv, mask):
        return multi_head_attention_forward(
            x_q, x_kv, self.params, self.num_heads, mask
        )

    def backward(self, dout, cache):
        """Return (dx_q, dx_kv); for self-attention the caller adds them."""
        dx_q, dx_kv, dparams = multi_head_attention_backward(dout, cache)
        for name, grad in dparams.items():
            self.grads[name] += grad
        return dx_q, dx_kv


class FeedForward(Layer):
    """Position-wise feed-forward network: ReLU(x W1 + b1) W2 + b2, D -> F -> D."""

    def __init__(self, d_model, d_ff, rng, dtype):
        super().__init__()
        xp = get_backend()
        self.add_parameter("W1", xavier_uniform(rng, d_model, d_ff, dtype))
        self.add_parameter("b1", xp.zeros(d_ff, dtype=dtype))
        self.add_parameter("W2", xavier_uniform(rng, d_ff, d_model, dtype))
        self.add_parameter("b2", xp.zeros(d_model, dtype=dtype))

    def forward(self, x):
        hidden, cache1 = linear_forward(x, self.params["W1"], self.params["b1"])
        hidden, relu_cache = relu_forward(hidden)  # (B, T, F)
        out, cache2 = linear_forward(hidden, self.params["W2"], self.params["b2"])
        return out, (cache1, relu_cache, cache2)

    def backward(self, dout, cache):
        cache1, relu_cache, cache2 = cache
        dhidden, dW2, db2 = linear_backward(dout, cache2)
        dhidden = relu_backward(dhidden, relu_cache)
        dx, dW1, db1 = linear_backward(dhidden, cache1)
        self.grads["W1"] += dW1
        self.grads["b1"] += db1
        self.grads["W2"] += dW2
        self.grads["b2"] += db2
        return dx


class Embedding(Layer):
    """Token embedding table `weight` (V, D), drawn from N(0, D^-1/2)."""

    def __init__(self, vocab_size, d_model, rng, dtype):
        super().__init__()
        xp = get_backend()
        weight = rng.normal(0.0, d_model**-0.5, size=(vocab_size, d_model))
        self.add_parameter("weight", xp.asarray(weight.astype(dtype)))

    def forward(self, ids):
        return embedding_forward(ids, self.params["weight"])

    def backward(self, dout, cache):
        self.grads["weight"] += embedding_backward(dout, cache)


class SublayerConnection:
    """Residual connection around a sublayer, with LayerNorm before or after it.

    Post-LN (the paper's): out = LayerNorm(x + Dropout(sublayer(x))).
    NOTE: as in the paper, dropout acts only here and on the embedding sums. PyTorch's
    Transformer layers also drop attention weights and the FFN hidden layer.
    Pre-LN: out = x + Dropout(sublayer(LayerNorm(x))).
    `sublayer_forward(h) -> (y, cache)` and `sublayer_backward(dy, cache) -> dh` are
    passed in, so attention and the FFN share this one residual code path.
    """

    def __init__(self, norm, dropout, norm_first):
        self.norm = norm
        self.dropout = dropout
        self.norm_first = norm_first

    def forward(self, x, sublayer_forward, rng, training):
        if self.norm_first:
            h, norm_cache = self.norm.forward(x)
            y, sub_cache = sublayer_forward(h)
            y, drop_cache = dropout_forward(y, self.dropout, rng, training)
            out = x + y
        else:
            y, sub_cache = sublayer_forward(x)
            y, drop_cache = dropout_forward(y, self.dropout, rng, training)
            out, norm_cache = self.norm.forward(x + y)
        return out, (norm_cache, sub_cache, drop_cache)

    def backward(self, dout, cache, sublayer_backward):
        norm_cache, sub_cache, drop_cache = cache
        if self.norm_first:
            dy = dropout_backward(dout, drop_cache)
            dh = sublayer_backward(dy, sub_cache)
            return dout + self.norm.backward(dh, norm_cache)
        dsum = self.norm.backward(dout, norm_cache)
        dy = dropout_backward(dsum, drop_cache)
        return dsum + sublayer_backward(dy, sub_cache)


class EncoderLayer(Layer):
    """Self-attention, then the FFN, each inside a residual connection with LayerNorm."""

    def __init__(self, config, rng):
        super().__init__()
        D, dtype = config.d_model, config.dtype
        self.self_attn = MultiHeadAttention(D, config.num_heads, rng, dtype)
        self.norm1 = LayerNorm(D, config.layernorm_eps, dtype)
        self.ffn = FeedForward(D, config.d_ff, rng, dtype)
        self.norm2 = LayerNorm(D, config.layernorm_eps, dtype)
        self.children = {
            "self_attn": self.self_attn,
            "norm1": self.norm1,
            "ffn": self.ffn,
            "norm2": self.norm2,
        }
        self.attention_block = SublayerConnection(
            self.norm1, config.dropout, config.norm_first
        )
        self.ffn_block = SublayerConnection(
            self.norm2, config.dropout, config.norm_first
        )

    def forward(self, x, src_mask, rng, training):
        """x: (B, S, D); src_mask: (B, 1, 1, S). Returns out (B, S, D) and cache."""
        x, attn_cache = self.attention_block.forward(
            x, lambda h: self.self_attn.forward(h, h, src_mask), rng, training
        )
        x, ffn_cache = self.ffn_block.forward(x, self.ffn.forward, rng, training)
        return x, (attn_cache, ffn_cache)

    def backward(self, dout, cache):
        attn_cache, ffn_cache = cache
        dx = self.ffn_block.backward(dout, ffn_cache, self.ffn.backward)
        return self.attention_block.backward(dx, attn_cache, self._self_attn_backward)

    def _self_attn_backward(self, dy, cache):
        dx_q, dx_kv = self.self_attn.backward(dy, cache)
        return dx_q + dx_kv


class DecoderLayer(Layer):
    """Masked self-attention, cross-attention over the encoder output, then the FFN."""

    def __init__(self, config, rng):
        super().__init__()
        D, dtype = config.d_model, config.dtype
        self.self_attn = MultiHeadAttention(D, config.num_heads, rng, dtype)
        self.norm1 = LayerNorm(D, config.layernorm_eps, dtype)
        self.cross_attn = MultiHeadAttention(D, config.num_heads, rng, dtype)
        self.norm2 = LayerNorm(D, config.layernorm_eps, dtype)
        self.ffn = FeedForward(D, config.d_ff, rng, dtype)
        self.norm3 = LayerNorm(D, config.layernorm_eps, dtype)
        self.children = {
            "self_attn": self.self_attn,
            "norm1": self.norm1,
            "cross_attn": self.cross_attn,
            "norm2": self.norm2,
            "ffn": self.ffn,
            "norm3": self.norm3,
        }
        p, norm_first = config.dropout, config.norm_first
        self.self_attention_block = SublayerConnection(self.norm1, p, norm_first)
        self.cross_attention_block = SublayerConnection(self.norm2, p, norm_first)
        self.ffn_block = SublayerConnection(self.norm3, p, norm_first)

    def forward(self, x, memory, tgt_mask, src_mask, rng, training):
        """x: (B, T, D); memory: (B, S, D) encoder output; tgt_mask: (B, 1, T, T);
        src_mask: (B, 1, 1, S). Returns out (B, T, D) and cache."""
        x, self_cache = self.self_attention_block.forward(
            x, lambda h: self.self_attn.forward(h, h, tgt_mask), rng, training
        )
        x, cross_cache = self.cross_attention_block.forward(
            x, lambda h: self.cross_attn.forward(h, memory, src_mask), rng, training
        )
        x, ffn_cache = self.ffn_block.forward(x, self.ffn.forward, rng, training)
        return x, (self_cache, cross_cache, ffn_cache)

    def backward(self, dout, cache):
        """Return dx (B, T, D) and dmemory (B, S, D)."""
        self_cache, cross_cache, ffn_cache = cache
        dmemory = []

        def cross_attn_backward(dy, sub_cache):
            dx_q, dx_kv = self.cross_attn.backward(dy, sub_cache)
            dmemory.append(dx_kv)
            return dx_q

        dx = self.ffn_block.backward(dout, ffn_cache, self.ffn.backward)
        dx = self.cross_attention_block.backward(dx, cross_cache, cross_attn_backward)
        dx = self.self_attention_block.backward(
            dx, self_cache, self._self_attn_backward
        )
        return dx, dmemory[0]

    def _self_attn_backward(self, dy, cache):
        dx_q, dx_kv = self.self_attn.backward(dy, cache)
        return dx_q + dx_kv
