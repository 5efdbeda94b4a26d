"""Adam, the warmup + inverse-square-root learning-rate schedule, and clipping."""

import math

from .backend import array_module


class Adam:
    """Adam (Kingma and Ba, 2015) with bias correction, as torch.optim.Adam computes it.

    The defaults betas=(0.9, 0.98), eps=1e-9 are the values of Vaswani et al. (2017),
    section 5.3. weight_decay adds weight_decay * param to the gradient before the
    moments (coupled L2, PyTorch's Adam), not AdamW's decoupled decay.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0):
        if not lr >= 0:
            raise ValueError(f"lr must be non-negative, got {lr!r}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must each be in [0, 1), got {betas!r}")
        if not eps >= 0:
            raise ValueError(f"eps must be non-negative, got {eps!r}")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be non-negative, got {weight_decay!r}")
        self.params = dict(params)
        self.lr = lr
        self.betas = tuple(betas)
        self.eps = eps
        self.weight_decay = weight_decay
        self.step_count = 0
        self.m = {}
        self.v = {}
        for name, param in self.params.items():
            xp = array_module(param)
            self.m[name] = xp.zeros_like(param)
            self.v[name] = xp.zeros_like(param)

    def step(self, grads, lr=None):
        """Update every parameter in place from `grads` (same keys); return the lr used.

        m = β1 m + (1 - β1) g;  v = β2 v + (1 - β2) g²;
        param -= lr · (m / (1 - β1^t)) / (sqrt(v / (1 - β2^t)) + eps)
        with t the 1-based step count.
        """
        missing = sorted(set(self.params) - set(grads))
        if missing:
            raise ValueError(f"grads is missing entries for parameters {missing[:5]}")
        lr = self.lr if lr is None else lr
        self.step_count += 1
        beta1, beta2 = self.betas
        t = self.step_count
        bias_correction1 = 1.0 - beta1**t
        bias_correction2 = 1.0 - beta2**t
        step_size = lr / bias_correction1
        sqrt_correction2 = math.sqrt(bias_correction2)

        for name, param in self.params.items():
            grad = grads[name]
            if self.weight_decay:
                grad = grad + self.weight_decay * param
            xp = array_module(param)
            m, v = self.m[name], self.v[name]
            m *= beta1
            m += (1.0 - beta1) * grad
            v *= beta2
            v += (1.0 - beta2) * grad * grad
            denominator = xp.sqrt(v) / sqrt_correction2 + self.eps
            param -= step_size * m / denominator
        return lr

    def state_dict(self):
        return {"m": self.m, "v": self.v, "step": self.step_count}


class NoamSchedule:
    """Learning rate of Vaswani et al. (2017), equation 3, times `factor`.

    lr(step) = factor · d_model^-0.5 · min(step^-0.5, step · warmup_steps^-1.5):
    a linear rise for warmup_steps steps, then decay as 1/sqrt(step).
    """

    def __init__(self, d_model, warmup_steps=4000, factor=1.0):
        for name, value in (
            ("d_model", d_model),
            ("warmup_steps", warmup_steps),
            ("factor", factor),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {value!r}")
        if d_model < 1:
            raise ValueError(f"d_model must be positive, got {d_model!r}")
        if warmup_steps < 1:
            raise ValueError(f"warmup_steps must be at least 1, got {warmup_steps!r}")
        if not (factor > 0 and math.isfinite(factor)):
            raise ValueError(f"factor must be a positive finite number, got {factor!r}")
        self.d_model = d_model
        self.warmup_steps = warmup_steps
        self.factor = factor

    def lr(self, step):
        """Return the learning rate for 1-based optimizer step `step`."""
        if step < 1:
            raise ValueError(
                f"step must be at least 1 (steps count from 1), got {step!r}"
            )
        return (
            self.factor
            * self.d_model**-0.5
            * min(step**-0.5, step * self.warmup_steps**-1.5)
        )

    __call__ = lr


def clip_grad_norm(grads, max_norm):
    """Scale all gradients in place so their joint L2 norm is at most max_norm.

    Returns the total norm before clipping, as a Python float. A non-finite norm
    leaves the gradients unchanged, so the caller can report which tensor is bad.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be positive, got {max_norm!r}")
    total = 0.0
    for grad in grads.values():
        total += float((grad * grad).sum())
    norm = math.sqrt(total)
    if math.isfinite(norm) and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for grad in grads.values():
            grad *= grad.dtype.type(scale)
    return norm
