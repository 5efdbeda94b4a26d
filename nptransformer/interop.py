"""Conversion between our Transformer and the same network built from PyTorch's layers.

`to_torch(model)` builds a `torch.nn.Module` from `nn.TransformerEncoderLayer`,
`nn.TransformerDecoderLayer`, `nn.Embedding`, `nn.LayerNorm` and `nn.Linear`, with our
weights copied in, so that PyTorch's autograd can check every output and gradient of
our hand-written backward passes. `from_torch(module, config)` goes the other way.
PyTorch is imported only inside these functions: `import nptransformer` never needs it.

Dimensions: B batch, S source length, T target length, D d_model, F d_ff, V vocabulary.

Parameter names and layouts, ours -> PyTorch's, with <layer> standing for
`encoder.layers.{i}` or `decoder.layers.{i}`. Our weights are stored (d_in, d_out) for
y = x W + b, while `nn.Linear` stores (d_out, d_in) for y = x Wᵀ + b, so every weight
matrix is transposed. PyTorch keeps the query, key and value projections in one (3D, D)
`in_proj_weight` whose row blocks 0:D, D:2D and 2D:3D are Wqᵀ, Wkᵀ and Wvᵀ.

    ours                        PyTorch                                   layout
    src_embedding.weight        src_embedding.weight                      same
    tgt_embedding.weight        tgt_embedding.weight                      same
    embedding.weight (shared)   embedding.weight                          same
    <layer>.self_attn.Wq        <layer>.self_attn.in_proj_weight[0:D]     transposed
    <layer>.self_attn.Wk        <layer>.self_attn.in_proj_weight[D:2D]    transposed
    <layer>.self_attn.Wv        <layer>.self_attn.in_proj_weight[2D:3D]   transposed
    <layer>.self_attn.bq/bk/bv  <layer>.self_attn.in_proj_bias[same rows] same
    <layer>.self_attn.Wo        <layer>.self_attn.out_proj.weight         transposed
    <layer>.self_attn.bo        <layer>.self_attn.out_proj.bias           same
    <layer>.cross_attn.*        <layer>.multihead_attn.*                  as self_attn
    <layer>.ffn.W1, .b1         <layer>.linear1.weight, .bias             Wᵀ, same
    <layer>.ffn.W2, .b2         <layer>.linear2.weight, .bias             Wᵀ, same
    <layer>.normK.gamma, .beta  <layer>.normK.weight, .bias (K = 1, 2, 3) same
    encoder.norm.gamma, .beta   encoder.norm.weight, .bias (pre-LN only)  same
    decoder.norm.gamma, .beta   decoder.norm.weight, .bias (pre-LN only)  same
    generator.W (untied only)   generator.weight                          transposed
    generator.b                 generator.bias                            same

The two models compute the same function only with dropout 0. PyTorch's layers also
drop attention weights and the FFN's hidden layer. Ours, like Vaswani et al. (2017,
section 5.4), drop only sublayer outputs and the sums of embeddings and positional
encodings. More in docs/pytorch.md.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy

from .backend import to_numpy
from .model import Transformer, TransformerConfig
from .ops import positional_encoding


class TorchSlot(NamedTuple):
    """The location of one of our parameters in the PyTorch module's state_dict.

    The PyTorch tensor is `state[torch_name][rows]` (the whole tensor when rows is
    None), and it equals our array transposed when `transpose` is True.
    """

    torch_name: str
    rows: slice | None
    transpose: bool


def _attention_slots(ours, theirs, D):
    """Map one attention block's eight parameters onto PyTorch's packed layout."""
    slots = {}
    for block, name in enumerate(("q", "k", "v")):
        rows = slice(block * D, (block + 1) * D)
        slots[f"{ours}.W{name}"] = TorchSlot(f"{theirs}.in_proj_weight", rows, True)
        slots[f"{ours}.b{name}"] = TorchSlot(f"{theirs}.in_proj_bias", rows, False)
    slots[f"{ours}.Wo"] = TorchSlot(f"{theirs}.out_proj.weight", None, True)
    slots[f"{ours}.bo"] = TorchSlot(f"{theirs}.out_proj.bias", None, False)
    return slots


def _layer_norm_slots(ours, theirs):
    return {
        f"{ours}.gamma": TorchSlot(f"{theirs}.weight", None, False),
        f"{ours}.beta": TorchSlot(f"{theirs}.bias", None, False),
    }


def _feed_forward_slots(prefix):
    return {
        f"{prefix}.ffn.W1": TorchSlot(f"{prefix}.linear1.weight", None, True),
        f"{prefix}.ffn.b1": TorchSlot(f"{prefix}.linear1.bias", None, False),
        f"{prefix}.ffn.W2": TorchSlot(f"{prefix}.linear2.weight", None, True),
        f"{prefix}.ffn.b2": TorchSlot(f"{prefix}.linear2.bias", None, False),
    }


def parameter_map(config):
    """Map each of our parameter names to its TorchSlot in the module of `to_torch`.

    The keys are exactly the names of `Transformer(config).parameters()`, and the
    slots cover every entry of the PyTorch module's state_dict once. The table in
    this module's docstring lists the rules.
    """
    if not isinstance(config, TransformerConfig):
        raise TypeError(
            f"config must be a TransformerConfig, got {type(config).__name__}"
        )
    D = config.d_model
    slots = {}
    if config.share_embeddings:
        embedding_names = ("embedding.weight",)
    else:
        embedding_names = ("src_embedding.weight", "tgt_embedding.weight")
    for name in embedding_names:
        slots[name] = TorchSlot(name, None, False)

    for i in range(config.num_encoder_layers):
        prefix = f"encoder.layers.{i}"
        slots.update(_attention_slots(f"{prefix}.self_attn", f"{prefix}.self_attn", D))
        slots.update(_feed_forward_slots(prefix))
        for norm in ("norm1", "norm2"):
            slots.update(_layer_norm_slots(f"{prefix}.{norm}", f"{prefix}.{norm}"))

    for i in range(config.num_decoder_layers):
        prefix = f"decoder.layers.{i}"
        slots.update(_attention_slots(f"{prefix}.self_attn", f"{prefix}.self_attn", D))
        slots.update(
            _attention_slots(f"{prefix}.cross_attn", f"{prefix}.multihead_attn", D)
        )
        slots.update(_feed_forward_slots(prefix))
        for norm in ("norm1", "norm2", "norm3"):
            slots.update(_layer_norm_slots(f"{prefix}.{norm}", f"{prefix}.{norm}"))

    if config.norm_first:
        slots.update(_layer_norm_slots("encoder.norm", "encoder.norm"))
        slots.update(_layer_norm_slots("decoder.norm", "decoder.norm"))
    if not config.tie_embeddings:
        slots["generator.W"] = TorchSlot("generator.weight", None, True)
    slots["generator.b"] = TorchSlot("generator.bias", None, False)
    return slots


def torch_to_ours(tensors, config):
    """Convert PyTorch-named tensors to our names and layouts.

    tensors: a mapping from PyTorch names to tensors or arrays, such as
    `module.state_dict()` or the parameters' `.grad`. Returns a dict from our
    parameter names to new contiguous NumPy arrays, with our shapes and the input
    dtype. Raises ValueError naming the PyTorch entries that are missing.
    """
    slots = parameter_map(config)
    missing = sorted({slot.torch_name for slot in slots.values()} - set(tensors))
    if missing:
        raise ValueError(
            f"the PyTorch tensors lack {missing[:5]}; pass the state_dict (or the "
            "gradients) of a module built by to_torch for this config"
        )
    arrays = {}
    for name, slot in slots.items():
        tensor = tensors[slot.torch_name]
        if hasattr(tensor, "detach"):
            tensor = tensor.detach().cpu().numpy()
        array = numpy.asarray(tensor)
        if slot.rows is not None:
            array = array[slot.rows]
        if slot.transpose:
            array = array.T
        arrays[name] = numpy.ascontiguousarray(array)
    return arrays


def torch_gradients(module, config):
    """Return the `.grad` of every parameter of `module` under our names and layouts.

    A parameter that autograd never reached (`.grad` is None) gets a zero array, which
    is what our `gradients()` holds for it after `zero_grad()`.
    """
    import torch

    gradients = {}
    for name, parameter in module.named_parameters():
        grad = parameter.grad
        gradients[name] = torch.zeros_like(parameter) if grad is None else grad
    return torch_to_ours(gradients, config)


@functools.cache
def _torch_transformer_class():
    """Define the PyTorch module class once, on first use, so torch loads lazily."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class LayerStack(nn.Module):
        """The encoder or decoder: `layers` plus, for pre-LN, a final `norm`."""

        def __init__(self, layers, norm):
            super().__init__()
            self.layers = nn.ModuleList(layers)
            self.norm = norm

    class TiedGenerator(nn.Module):
        """The output bias alone: a tied generator's weight is the target embedding."""

        def __init__(self, vocab_size, dtype):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(vocab_size, dtype=dtype))

    class TorchTransformer(nn.Module):
        """Our Transformer rebuilt from PyTorch's layers: same names as `parameter_map`.

        forward(src, tgt_in) takes int64 ids (B, S) and (B, T) and returns logits
        (B, T, V), building PyTorch's masks from `config.pad_id` (True = ignore).
        The layers sit in plain ModuleLists and run one by one rather than through
        nn.TransformerEncoder, which needs at least one layer and may convert the
        input to a nested tensor.
        """

        def __init__(self, config):
            super().__init__()
            self.config = config
            dtype = getattr(torch, config.dtype)
            D = config.d_model
            if config.share_embeddings:
                self.embedding = nn.Embedding(config.src_vocab_size, D, dtype=dtype)
            else:
                self.src_embedding = nn.Embedding(config.src_vocab_size, D, dtype=dtype)
                self.tgt_embedding = nn.Embedding(config.tgt_vocab_size, D, dtype=dtype)
            table = positional_encoding(config.max_len, D)
            self.register_buffer(
                "positional_table",
                torch.as_tensor(table, dtype=dtype),
                persistent=False,
            )
            self.embedding_dropout = nn.Dropout(config.dropout)

            layer_options = {
                "d_model": D,
                "nhead": config.num_heads,
                "dim_feedforward": config.d_ff,
                "dropout": config.dropout,
                "activation": "relu",
                "layer_norm_eps": config.layernorm_eps,
                "batch_first": True,
                "norm_first": config.norm_first,
                "dtype": dtype,
            }
            encoder_layers = [
                nn.TransformerEncoderLayer(**layer_options)
                for _ in range(config.num_encoder_layers)
            ]
            decoder_layers = [
                nn.TransformerDecoderLayer(**layer_options)
                for _ in range(config.num_decoder_layers)
            ]
            encoder_norm = decoder_norm = None
            if config.norm_first:
                eps = config.layernorm_eps
                encoder_norm = nn.LayerNorm(D, eps=eps, dtype=dtype)
                decoder_norm = nn.LayerNorm(D, eps=eps, dtype=dtype)
            self.encoder = LayerStack(encoder_layers, encoder_norm)
            self.decoder = LayerStack(decoder_layers, decoder_norm)

            if config.tie_embeddings:
                self.generator = TiedGenerator(config.tgt_vocab_size, dtype)
            else:
                self.generator = nn.Linear(D, config.tgt_vocab_size, dtype=dtype)

        def embeddings(self):
            """Return the source and target nn.Embedding (one module twice if shared)."""
            if self.config.share_embeddings:
                return self.embedding, self.embedding
            return self.src_embedding, self.tgt_embedding

        def embed(self, ids, embedding):
            """Embedding * sqrt(D) + positional encoding, then dropout: (B, L, D)."""
            L = ids.shape[1]
            scale = math.sqrt(self.config.d_model)
            x = embedding(ids) * scale + self.positional_table[:L]
            return self.embedding_dropout(x)

        def forward(self, src, tgt_in):
            src_embedding, tgt_embedding = self.embeddings()
            pad_id = self.config.pad_id
            src_padding = src == pad_id  # (B, S)
            tgt_padding = tgt_in == pad_id  # (B, T)
            T = tgt_in.shape[1]
            ones = torch.ones(T, T, dtype=torch.bool, device=tgt_in.device)
            future = torch.triu(ones, diagonal=1)  # (T, T), True above the diagonal

            memory = self.embed(src, src_embedding)  # (B, S, D)
            for layer in self.encoder.layers:
                memory = layer(memory, src_key_padding_mask=src_padding)
            if self.encoder.norm is not None:
                memory = self.encoder.norm(memory)

            x = self.embed(tgt_in, tgt_embedding)  # (B, T, D)
            for layer in self.decoder.layers:
                x = layer(
                    x,
                    memory,
                    tgt_mask=future,
                    tgt_key_padding_mask=tgt_padding,
                    memory_key_padding_mask=src_padding,
                )
            if self.decoder.norm is not None:
                x = self.decoder.norm(x)

            if self.config.tie_embeddings:
                return F.linear(x, tgt_embedding.weight, self.generator.bias)
            return self.generator(x)  # (B, T, V)

    return TorchTransformer


def to_torch(model):
    """Build a PyTorch module that computes what `model` computes, with its weights.

    model: a Transformer (any backend). Returns a `torch.nn.Module` on the CPU, with
    the model's dtype, made of `nn.TransformerEncoderLayer` and
    `nn.TransformerDecoderLayer` (batch_first=True, ReLU, the model's norm_first,
    layernorm_eps and dropout), `nn.Embedding`, `nn.LayerNorm` and `nn.Linear`. Its
    forward(src, tgt_in) takes int64 tensors (B, S) and (B, T) and returns logits
    (B, T, V), building src_key_padding_mask, tgt_key_padding_mask,
    memory_key_padding_mask and the causal tgt_mask itself. It embeds with our
    sqrt(d_model) scale and our sinusoidal table, ties and shares embeddings as the
    config sets, and names its parameters as `parameter_map` lists.

    The module starts in training mode, like every new nn.Module. Outputs match ours
    only with dropout 0, because PyTorch's layers also drop attention weights and the
    FFN's hidden layer. A source row made only of padding leaves its queries no key to
    attend to. Ours and PyTorch 2.13's scaled_dot_product_attention, which the layers
    use while autograd records, give zeros there. The fused kernels PyTorch runs in
    eval mode under torch.no_grad() give NaN.
    """
    import torch

    if not isinstance(model, Transformer):
        raise TypeError(f"model must be a Transformer, got {type(model).__name__}")
    config = model.config
    module = _torch_transformer_class()(config)
    state = module.state_dict()
    with torch.no_grad():
        for name, slot in parameter_map(config).items():
            array = to_numpy(model.parameters()[name])
            if slot.transpose:
                array = array.T
            target = state[slot.torch_name]
            if slot.rows is not None:
                target = target[slot.rows]
            target.copy_(torch.as_tensor(numpy.ascontiguousarray(array)))
    return module


def from_torch(module, config):
    """Build a Transformer with `config` and the weights of a PyTorch `module`.

    module: a module whose state_dict has the names of `parameter_map(config)`, such
    as one built by `to_torch` and then trained in PyTorch. Returns a new Transformer
    whose parameters are copies of the module's, cast to `config.dtype`. Raises
    ValueError naming missing entries or mismatched shapes.
    """
    if not isinstance(config, TransformerConfig):
        raise TypeError(
            f"config must be a TransformerConfig, got {type(config).__name__}"
        )
    model = Transformer(config)
    model.load_state_dict(torch_to_ours(module.state_dict(), config))
    return model
