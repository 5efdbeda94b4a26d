"""Forward/backward pairs for every operation of the Transformer.

Each op is `NAME_forward(...) -> (out, cache)` and `NAME_backward(dout, cache)`,
returning gradients in the order of the forward's differentiable inputs. The one
exception is `cross_entropy_backward(cache, dloss=1.0)`, because the loss ends the graph.
"""

from .attention import attention_backward, attention_forward
from .cross_entropy import cross_entropy_backward, cross_entropy_forward
from .dropout import dropout_backward, dropout_forward
from .embedding import embedding_backward, embedding_forward
from .layernorm import layernorm_backward, layernorm_forward
from .linear import linear_backward, linear_forward
from .multi_head_attention import (
    multi_head_attention_backward,
    multi_head_attention_forward,
)
from .positional import positional_encoding
from .relu import relu_backward, relu_forward
from .softmax import softmax_backward, softmax_forward

__all__ = [
    "attention_backward",
    "attention_forward",
    "cross_entropy_backward",
    "cross_entropy_forward",
    "dropout_backward",
    "dropout_forward",
    "embedding_backward",
    "embedding_forward",
    "layernorm_backward",
    "layernorm_forward",
    "linear_backward",
    "linear_forward",
    "multi_head_attention_backward",
    "multi_head_attention_forward",
    "positional_encoding",
    "relu_backward",
    "relu_forward",
    "softmax_backward",
    "softmax_forward",
]
