"""nptransformer: the Transformer of "Attention Is All You Need" in NumPy, with every
forward and backward pass written by hand and checked by gradient checks."""

from .backend import set_backend
from .gradcheck import check_gradients
from .model import Transformer, TransformerConfig
from .optim import Adam, NoamSchedule, clip_grad_norm

__version__ = "0.1.0"

__all__ = [
    "Adam",
    "NoamSchedule",
    "Transformer",
    "TransformerConfig",
    "__version__",
    "check_gradients",
    "clip_grad_norm",
    "set_backend",
]
