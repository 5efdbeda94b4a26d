"""Incremental decoding: one new target position per step, with cached keys and values.

Decoding with `Transformer.decode` reruns the decoder over the whole prefix at every
step, so T steps cost 1 + 2 + ... + T = T(T + 1) / 2 position computations. The
decoder is causal, so the outputs of earlier positions never change when a token is
appended, and a `DecoderState` computes only the newest position. It keeps, per decoder
layer, the self-attention keys and values of all earlier positions, and the encoder
memory's cross-attention keys and values, projected once. The memory cost is
2 * layers * N * H * (t + S) * Dh numbers.

The state composes the same ops and parameter dicts as the model, so its logits equal
those of `Transformer.decode` on the full prefix up to round-off. It is for
evaluation only: it applies no dropout and keeps no caches for a backward pass.

Dimensions: N rows (batch, or batch * beams), S source length, t positions decoded so
far, D d_model, H heads, Dh = D / H head size, V target vocabulary.
"""

import functools

from .backend import array_module
from .ops import attention_forward, embedding_forward, linear_forward
from .ops.multi_head_attention import _merge_heads, _split_heads


class DecoderState:
    """Cached decoder state of one batch, fed one token per row by `step`.

    model is a Transformer, memory the encoder output (N, S, D), and src_mask the
    boolean source key-padding mask (N, 1, 1, S) from `model.make_masks`. The first
    token to feed is normally BOS. Row i of every cached array belongs to row i of
    the batch. `reorder` gathers rows, which beam search uses to follow the
    surviving hypotheses.
    """

    def __init__(self, model, memory, src_mask):
        if memory.ndim != 3 or memory.shape[-1] != model.config.d_model:
            raise ValueError(
                f"memory must have shape (N, S, {model.config.d_model}), "
                f"got {tuple(memory.shape)}"
            )
        N, S, _ = memory.shape
        if tuple(src_mask.shape) != (N, 1, 1, S):
            raise ValueError(
                f"src_mask must have shape {(N, 1, 1, S)} to match memory, "
                f"got {tuple(src_mask.shape)}"
            )
        self.model = model
        self.src_mask = src_mask
        xp = array_module(memory)
        self._xp = xp

        # Target key-padding mask of the positions fed so far: (N, t), True = may attend.
        self.key_mask = xp.zeros((N, 0), dtype=bool)

        # Self-attention keys and values, one (N, H, t, Dh) array per layer.
        # Cross-attention keys and values, one (N, H, S, Dh) array per layer, projected
        # from the memory here and never again.
        self.self_keys = []
        self.self_values = []
        self.cross_keys = []
        self.cross_values = []
        H = model.config.num_heads
        empty = xp.zeros((N, H, 0, model.config.d_model // H), dtype=memory.dtype)
        for layer in model.decoder_layers:
            self.self_keys.append(empty)
            self.self_values.append(empty)
            params = layer.cross_attn.params
            key, _ = linear_forward(memory, params["Wk"], params["bk"])
            value, _ = linear_forward(memory, params["Wv"], params["bv"])
            self.cross_keys.append(_split_heads(key, H))  # (N, H, S, Dh)
            self.cross_values.append(_split_heads(value, H))  # (N, H, S, Dh)

    @property
    def num_rows(self):
        """N, the number of rows (sequences) decoded in parallel."""
        return self.key_mask.shape[0]

    @property
    def length(self):
        """t, the number of positions fed so far (BOS included)."""
        return self.key_mask.shape[1]

    def step(self, tokens):
        """Feed one token per row at position t and return the logits (N, V) there.

        tokens: integer array (N,), the ids at position t (BOS at position 0). A PAD
        token is embedded as usual but hidden as a key from later positions, exactly
        as `Transformer.make_masks` hides target padding. Positions run from 0 to
        max_len - 1; a step at position max_len raises ValueError.
        """
        self._check_tokens(tokens)
        model = self.model
        t = self.length

        # 1. the new position's key-padding entry: (N, t + 1)
        is_key = (tokens != model.config.pad_id)[:, None]
        self.key_mask = self._xp.concatenate([self.key_mask, is_key], axis=1)

        # 2. embedding * sqrt(D) + positional encoding; no dropout: (N, 1, D)
        x, _ = embedding_forward(tokens[:, None], model.tgt_embedding.params["weight"])
        x = x * model.embedding_scale + model.positional_table[t]

        # 3. decoder layers, each with the three residual blocks of DecoderLayer
        for i, layer in enumerate(model.decoder_layers):
            self_attention = functools.partial(self._self_attention, i, layer)
            cross_attention = functools.partial(self._cross_attention, i, layer)
            x = self._residual(x, layer.norm1, self_attention)
            x = self._residual(x, layer.norm2, cross_attention)
            x = self._residual(x, layer.norm3, layer.ffn.forward)

        # 4. final LayerNorm (pre-LN only), then the generator: (N, 1, V)
        if model.config.norm_first:
            x, _ = model.decoder_norm.forward(x)
        logits, _ = linear_forward(
            x, model._generator_weight(), model.generator.params["b"]
        )
        return logits[:, 0]

    def reorder(self, rows):
        """Gather the rows `rows` of the state: every cached array becomes array[rows].

        rows is an integer array (M,) of row indices in [0, N). An index may repeat,
        which copies a row, or be left out, which drops one, so M may differ from N.
        """
        xp = self._xp
        rows = xp.asarray(rows)
        if rows.ndim != 1 or rows.dtype.kind not in "iu":
            raise ValueError(
                f"rows must be a 1-D integer array, got dtype {rows.dtype} and "
                f"shape {tuple(rows.shape)}"
            )
        if rows.size and (int(rows.min()) < 0 or int(rows.max()) >= self.num_rows):
            raise ValueError(
                f"rows must lie in [0, {self.num_rows}), got values from "
                f"{int(rows.min())} to {int(rows.max())}"
            )
        self.src_mask = self.src_mask[rows]
        self.key_mask = self.key_mask[rows]
        for arrays in (
            self.self_keys,
            self.self_values,
            self.cross_keys,
            self.cross_values,
        ):
            for i, array in enumerate(arrays):
                arrays[i] = array[rows]

    def _residual(self, x, norm, sublayer):
        """Apply one residual block: LayerNorm(x + sublayer(x)) with post-LN, or
        x + sublayer(LayerNorm(x)) with pre-LN.

        sublayer(h) returns (out, cache) like the layers' forward, and the cache is
        dropped.
        """
        if self.model.config.norm_first:
            h, _ = norm.forward(x)
            y, _ = sublayer(h)
            return x + y
        y, _ = sublayer(x)
        out, _ = norm.forward(x + y)
        return out

    def _self_attention(self, i, layer, h):
        """Masked self-attention of the new position over positions 0..t of layer i.

        h: (N, 1, D). Appends this position's key and value to the layer's cache. No
        causal mask is needed because the cache contains no later positions.
        """
        xp = self._xp
        params = layer.self_attn.params
        H = self.model.config.num_heads

        # 1. projections of the new position: (N, H, 1, Dh) each
        query, _ = linear_forward(h, params["Wq"], params["bq"])
        key, _ = linear_forward(h, params["Wk"], params["bk"])
        value, _ = linear_forward(h, params["Wv"], params["bv"])
        query = _split_heads(query, H)
        key = _split_heads(key, H)
        value = _split_heads(value, H)

        # 2. append to the cache: (N, H, t + 1, Dh)
        self.self_keys[i] = xp.concatenate([self.self_keys[i], key], axis=2)
        self.self_values[i] = xp.concatenate([self.self_values[i], value], axis=2)

        # 3. attend over every cached position that is not padding: (N, H, 1, Dh)
        mask = self.key_mask[:, None, None, :]  # (N, 1, 1, t + 1)
        heads, _ = attention_forward(
            query, self.self_keys[i], self.self_values[i], mask
        )

        # 4. merge heads and project out: (N, 1, D), with the linear op's cache
        return linear_forward(_merge_heads(heads), params["Wo"], params["bo"])

    def _cross_attention(self, i, layer, h):
        """Attend from h (N, 1, D) to layer i's encoder memory; return (out, cache)."""
        params = layer.cross_attn.params
        H = self.model.config.num_heads
        query, _ = linear_forward(h, params["Wq"], params["bq"])
        query = _split_heads(query, H)  # (N, H, 1, Dh)
        heads, _ = attention_forward(
            query, self.cross_keys[i], self.cross_values[i], self.src_mask
        )
        return linear_forward(_merge_heads(heads), params["Wo"], params["bo"])

    def _check_tokens(self, tokens):
        config = self.model.config
        if not hasattr(tokens, "dtype") or tokens.dtype.kind not in "iu":
            raise TypeError(
                f"tokens must be an integer array of shape ({self.num_rows},), "
                f"got {type(tokens).__name__} {getattr(tokens, 'dtype', '')}".rstrip()
            )
        if tuple(tokens.shape) != (self.num_rows,):
            raise ValueError(
                f"tokens must have shape ({self.num_rows},), one id per row, "
                f"got {tuple(tokens.shape)}"
            )
        if self.length >= config.max_len:
            raise ValueError(
                f"position {self.length} is beyond the model's max_len {config.max_len}; "
                "decode fewer tokens or build the model with a larger max_len"
            )
        if tokens.size:
            low, high = int(tokens.min()), int(tokens.max())
            if low < 0 or high >= config.tgt_vocab_size:
                bad = low if low < 0 else high
                raise ValueError(
                    f"tokens contains token id {bad}, outside the target vocabulary "
                    f"[0, {config.tgt_vocab_size})"
                )


def start_decoding(model, src):
    """Encode src (B, S) and return a DecoderState with no positions fed yet.

    src is validated as in `Transformer.forward`. Feed BOS first.
    """
    src, _ = model.check_inputs(src)
    src_mask, _ = model.make_masks(src, None)
    memory, _ = model.encode(src, src_mask, training=False)
    return DecoderState(model, memory, src_mask)
