"""The encoder-decoder Transformer of Vaswani et al. (2017), forward and backward.

Dimensions: B batch, S source length, T target length, D d_model, V vocabulary.
Architecture and shapes: docs/architecture.md.
"""

import dataclasses
import math

import numpy

from .backend import get_backend, to_numpy
from .layers import (
    DecoderLayer,
    Embedding,
    EncoderLayer,
    Layer,
    LayerNorm,
    xavier_uniform,
)
from .ops import (
    dropout_backward,
    dropout_forward,
    linear_backward,
    linear_forward,
    positional_encoding,
)

_DTYPES = ("float32", "float64")


@dataclasses.dataclass
class TransformerConfig:
    """Sizes and switches of a Transformer. The defaults are the paper's base model."""

    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 512
    num_heads: int = 8
    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    d_ff: int = 2048
    dropout: float = 0.1
    max_len: int = 512
    pad_id: int = 0
    norm_first: bool = False
    tie_embeddings: bool = False
    share_embeddings: bool = False
    # NOTE: the paper gives no LayerNorm epsilon; 1e-5 is PyTorch's default.
    layernorm_eps: float = 1e-5
    dtype: str = "float32"

    def __post_init__(self):
        positive = (
            "src_vocab_size",
            "tgt_vocab_size",
            "d_model",
            "num_heads",
            "d_ff",
            "max_len",
        )
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)):
                raise TypeError(f"{name} must be an integer, got {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        for name in ("num_encoder_layers", "num_decoder_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)):
                raise TypeError(f"{name} must be an integer, got {value!r}")
            if value < 0:
                raise ValueError(f"{name} must be non-negative, got {value}")
        if self.d_model % self.num_heads != 0:
            raise ValueError(
                f"d_model {self.d_model} is not divisible by num_heads {self.num_heads}; "
                "choose a head count that divides d_model"
            )
        for name in ("dropout", "layernorm_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {value!r}")
        if not isinstance(self.dtype, str):
            try:
                self.dtype = numpy.dtype(self.dtype).name
            except TypeError:
                raise TypeError(
                    f"dtype must be 'float32' or 'float64', got {self.dtype!r}"
                ) from None
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {self.dtype!r}")
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(
                "share_embeddings needs equal vocabularies, got src_vocab_size "
                f"{self.src_vocab_size} and tgt_vocab_size {self.tgt_vocab_size}"
            )
        if not 0 <= self.pad_id < min(self.src_vocab_size, self.tgt_vocab_size):
            raise ValueError(
                f"pad_id {self.pad_id} is outside the vocabularies "
                f"[0, {min(self.src_vocab_size, self.tgt_vocab_size)})"
            )
        if not self.layernorm_eps > 0:
            raise ValueError(
                f"layernorm_eps must be positive, got {self.layernorm_eps!r}"
            )

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TransformerConfig fields: {', '.join(unknown)}")
        return cls(**values)


def _check_ids(ids, name, vocab_size, max_len):
    """Validate one batch of token ids and return it as an int64 NumPy-or-backend array."""
    xp = get_backend()
    if not hasattr(ids, "dtype") or not hasattr(ids, "shape"):
        raise TypeError(
            f"{name} must be an integer array of shape (B, L), got {type(ids).__name__}"
        )
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer token ids, got dtype {ids.dtype}")
    if ids.ndim != 2:
        raise ValueError(f"{name} must have shape (B, L), got shape {tuple(ids.shape)}")
    if ids.shape[1] == 0:
        raise ValueError(
            f"{name} must hold at least one position, got shape {tuple(ids.shape)}"
        )
    if ids.shape[1] > max_len:
        raise ValueError(
            f"{name} has length {ids.shape[1]}, longer than max_len {max_len}; "
            "shorten the sequences or build the model with a larger max_len"
        )
    if ids.size:
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= vocab_size:
            bad = low if low < 0 else high
            raise ValueError(
                f"{name} contains token id {bad}, outside the vocabulary [0, {vocab_size})"
            )
    return xp.asarray(ids).astype(xp.int64, copy=False)


class Transformer(Layer):
    """Encoder-decoder Transformer with hand-written backward pass.

    forward(src, tgt_in) gives logits (B, T, V); backward(dlogits) adds every
    parameter's gradient into gradients(). See docs/architecture.md.
    """

    def __init__(self, config, seed=0):
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(
                f"config must be a TransformerConfig, got {type(config).__name__}"
            )
        self.config = config
        xp = get_backend()
        dtype = numpy.dtype(config.dtype)
        self.dtype = dtype
        init_rng = numpy.random.default_rng(seed)
        D = config.d_model

        if config.share_embeddings:
            self.src_embedding = Embedding(config.src_vocab_size, D, init_rng, dtype)
            self.tgt_embedding = self.src_embedding
            self.children["embedding"] = self.src_embedding
        else:
            self.src_embedding = Embedding(config.src_vocab_size, D, init_rng, dtype)
            self.tgt_embedding = Embedding(config.tgt_vocab_size, D, init_rng, dtype)
            self.children["src_embedding"] = self.src_embedding
            self.children["tgt_embedding"] = self.tgt_embedding

        self.encoder_layers = [
            EncoderLayer(config, init_rng) for _ in range(config.num_encoder_layers)
        ]
        self.decoder_layers = [
            DecoderLayer(config, init_rng) for _ in range(config.num_decoder_layers)
        ]
        for i, layer in enumerate(self.encoder_layers):
            self.children[f"encoder.layers.{i}"] = layer
        for i, layer in enumerate(self.decoder_layers):
            self.children[f"decoder.layers.{i}"] = layer
        if config.norm_first:
            self.encoder_norm = LayerNorm(D, config.layernorm_eps, dtype)
            self.decoder_norm = LayerNorm(D, config.layernorm_eps, dtype)
            self.children["encoder.norm"] = self.encoder_norm
            self.children["decoder.norm"] = self.decoder_norm

        self.generator = Layer()
        if not config.tie_embeddings:
            self.generator.add_parameter(
                "W", xavier_uniform(init_rng, D, config.tgt_vocab_size, dtype)
            )
        self.generator.add_parameter("b", xp.zeros(config.tgt_vocab_size, dtype=dtype))
        self.children["generator"] = self.generator

        self.positional_table = xp.asarray(
            positional_encoding(config.max_len, D).astype(dtype)
        )
        self.embedding_scale = dtype.type(math.sqrt(D))
        self.dropout_rng = xp.random.default_rng(seed + 1)
        self._params = {name: p for name, p, _ in self.named_parameters()}
        self._grads = {name: g for name, _, g in self.named_parameters()}
        self._cache = None

    # ---- parameters ----------------------------------------------------------------

    def parameters(self):
        """Return the live parameter arrays by dotted name (shared weights once)."""
        return dict(self._params)

    def gradients(self):
        """Return the live gradient arrays, with the same keys as parameters()."""
        return dict(self._grads)

    def zero_grad(self):
        for grad in self._grads.values():
            grad.fill(0)

    def num_parameters(self):
        return int(sum(p.size for p in self._params.values()))

    # ---- masks ---------------------------------------------------------------------

    def make_masks(self, src, tgt_in):
        """Build boolean keep-masks (True = may attend) from pad_id.

        Returns src_mask (B, 1, 1, S) for encoder self-attention and cross-attention,
        and tgt_mask (B, 1, T, T): target key padding and the causal mask together.
        """
        xp = get_backend()
        pad = self.config.pad_id
        src_mask = (src != pad)[:, None, None, :]
        tgt_mask = None
        if tgt_in is not None:
            T = tgt_in.shape[1]
            causal = xp.tril(xp.ones((T, T), dtype=bool))
            tgt_mask = (tgt_in != pad)[:, None, None, :] & causal
        return src_mask, tgt_mask

    # ---- forward -------------------------------------------------------------------

    def _embed(self, ids, embedding, rng, training):
        """Embedding * sqrt(D) + positional encoding, then dropout: (B, L, D)."""
        L = ids.shape[1]
        x, embed_cache = embedding.forward(ids)
        x = x * self.embedding_scale + self.positional_table[:L]
        x, drop_cache = dropout_forward(x, self.config.dropout, rng, training)
        return x, (embed_cache, drop_cache)

    def _embed_backward(self, dx, cache, embedding):
        embed_cache, drop_cache = cache
        dx = dropout_backward(dx, drop_cache)
        embedding.backward(dx * self.embedding_scale, embed_cache)

    def check_inputs(self, src, tgt_in=None):
        """Validate token ids; return them as int64 arrays on the active backend."""
        config = self.config
        src = _check_ids(src, "src", config.src_vocab_size, config.max_len)
        if tgt_in is not None:
            tgt_in = _check_ids(tgt_in, "tgt_in", config.tgt_vocab_size, config.max_len)
            if tgt_in.shape[0] != src.shape[0]:
                raise ValueError(
                    f"batch sizes differ: src has {src.shape[0]} rows, "
                    f"tgt_in has {tgt_in.shape[0]}"
                )
        return src, tgt_in

    def encode(self, src, src_mask, training=False):
        """Run the encoder: src (B, S) ids -> memory (B, S, D), plus the caches."""
        rng = self.dropout_rng
        x, embed_cache = self._embed(src, self.src_embedding, rng, training)
        layer_caches = []
        for layer in self.encoder_layers:
            x, cache = layer.forward(x, src_mask, rng, training)
            layer_caches.append(cache)
        norm_cache = None
        if self.config.norm_first:
            x, norm_cache = self.encoder_norm.forward(x)
        return x, (embed_cache, layer_caches, norm_cache)

    def decode(self, tgt_in, memory, src_mask, tgt_mask, training=False):
        """Run the decoder and generator: tgt_in (B, T) -> logits (B, T, V), caches."""
        rng = self.dropout_rng
        x, embed_cache = self._embed(tgt_in, self.tgt_embedding, rng, training)
        layer_caches = []
        for layer in self.decoder_layers:
            x, cache = layer.forward(x, memory, tgt_mask, src_mask, rng, training)
            layer_caches.append(cache)
        norm_cache = None
        if self.config.norm_first:
            x, norm_cache = self.decoder_norm.forward(x)
        logits, generator_cache = linear_forward(
            x, self._generator_weight(), self.generator.params["b"]
        )
        return logits, (embed_cache, layer_caches, norm_cache, generator_cache)

    def _generator_weight(self):
        """(D, V): the generator's own W, or the target embedding transposed when tied."""
        if self.config.tie_embeddings:
            return self.tgt_embedding.params["weight"].T
        return self.generator.params["W"]

    def forward(self, src, tgt_in, training=False, return_attention=False):
        """Return logits (B, T, V) for source ids src (B, S) and decoder inputs tgt_in (B, T).

        training=True applies dropout and keeps the caches for backward(); with
        return_attention=True the result is (logits, weights), weights mapping
        "encoder.layers.{i}.self_attn", "decoder.layers.{i}.self_attn" and
        "decoder.layers.{i}.cross_attn" to arrays (B, H, Tq, Tk).
        """
        src, tgt_in = self.check_inputs(src, tgt_in)
        src_mask, tgt_mask = self.make_masks(src, tgt_in)
        memory, encoder_cache = self.encode(src, src_mask, training)
        logits, decoder_cache = self.decode(
            tgt_in, memory, src_mask, tgt_mask, training
        )
        self._cache = (encoder_cache, decoder_cache) if training else None
        if return_attention:
            return logits, self._attention_weights(encoder_cache, decoder_cache)
        return logits

    @staticmethod
    def _attention_weights(encoder_cache, decoder_cache):
        weights = {}
        # A layer cache holds one SublayerConnection cache per block; the sublayer's
        # own cache (the multi-head attention cache) is entry 1 of each.
        for i, (attn_cache, _) in enumerate(encoder_cache[1]):
            weights[f"encoder.layers.{i}.self_attn"] = attn_cache[1]["weights"]
        for i, (self_cache, cross_cache, _) in enumerate(decoder_cache[1]):
            weights[f"decoder.layers.{i}.self_attn"] = self_cache[1]["weights"]
            weights[f"decoder.layers.{i}.cross_attn"] = cross_cache[1]["weights"]
        return weights

    # ---- backward ------------------------------------------------------------------

    def backward(self, dlogits):
        """Back-propagate dlogits (B, T, V) through the latest training forward.

        Adds into gradients(); call zero_grad() first to start from zero.
        """
        if self._cache is None:
            raise RuntimeError(
                "backward() needs the caches of a forward(..., training=True) call; "
                "run a training forward first"
            )
        encoder_cache, decoder_cache = self._cache
        if tuple(dlogits.shape) != tuple(decoder_cache[3][0].shape[:-1]) + (
            self.config.tgt_vocab_size,
        ):
            raise ValueError(
                f"dlogits has shape {tuple(dlogits.shape)}, expected the logits' shape"
            )
        embed_cache, layer_caches, norm_cache, generator_cache = decoder_cache

        # Generator: logits = x W + b (W = target embeddingᵀ when tied).
        dx, dW, db = linear_backward(dlogits, generator_cache)
        self.generator.grads["b"] += db
        if self.config.tie_embeddings:
            self.tgt_embedding.grads["weight"] += dW.T
        else:
            self.generator.grads["W"] += dW

        # Decoder, last layer first; every layer adds into the memory gradient.
        if self.config.norm_first:
            dx = self.decoder_norm.backward(dx, norm_cache)
        dmemory = 0
        for layer, cache in zip(reversed(self.decoder_layers), reversed(layer_caches)):
            dx, dmemory_layer = layer.backward(dx, cache)
            dmemory = dmemory + dmemory_layer
        self._embed_backward(dx, embed_cache, self.tgt_embedding)

        # Encoder, from the memory gradient (none when there are no decoder layers).
        if not self.decoder_layers:
            return
        embed_cache, layer_caches, norm_cache = encoder_cache
        dx = dmemory
        if self.config.norm_first:
            dx = self.encoder_norm.backward(dx, norm_cache)
        for layer, cache in zip(reversed(self.encoder_layers), reversed(layer_caches)):
            dx = layer.backward(dx, cache)
        self._embed_backward(dx, embed_cache, self.src_embedding)

    # ---- state ---------------------------------------------------------------------

    def state_dict(self):
        """Copy every parameter to a NumPy array, keyed by dotted name."""
        return {name: numpy.array(to_numpy(p)) for name, p in self._params.items()}

    def load_state_dict(self, state):
        """Copy arrays into the live parameters; names, shapes must match exactly."""
        missing = sorted(set(self._params) - set(state))
        unexpected = sorted(set(state) - set(self._params))
        if missing or unexpected:
            raise ValueError(
                f"parameter names do not match the model: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )
        xp = get_backend()
        for name, param in self._params.items():
            value = state[name]
            if tuple(value.shape) != tuple(param.shape):
                raise ValueError(
                    f"parameter {name} has shape {tuple(value.shape)} in the state, "
                    f"but the model expects {tuple(param.shape)}"
                )
            if not bool(xp.isfinite(xp.asarray(value)).all()):
                raise ValueError(f"parameter {name} holds NaN or infinite values")
            param[...] = xp.asarray(value, dtype=param.dtype)
