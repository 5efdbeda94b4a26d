"""Gradient checking by central finite differences in float64.

The checker compares an analytic backward pass with the numerical derivative of the
scalar f = Σ upstream * forward(inputs), where `upstream` is a random array. A random
upstream gradient matters. With an all-ones upstream the true softmax gradient is
exactly zero, so the check would only confirm that backward returns zeros. Any wrong
cross term that also vanishes for a constant upstream gradient would then pass.

Error per tensor: max |numeric - analytic| / max(scale, floor), where scale is the
largest magnitude of either gradient of that tensor, and floor is the larger of an
absolute floor and `relative_floor` times the largest gradient of the whole check.
Above the floor this is a relative error. Below it (a tensor whose true gradient is
zero, such as attention's key bias bk) it is the absolute error measured against the
size of the other gradients, because finite-difference noise grows with them.
"""

from dataclasses import dataclass

import numpy

from .backend import array_module, to_numpy


@dataclass
class TensorCheck:
    """The comparison of one tensor's analytic and numeric gradients."""

    name: str
    shape: tuple
    error: float
    max_abs_diff: float
    index: tuple
    analytic: float
    numeric: float
    scale: float


class GradientReport:
    """The per-tensor results of `check_gradients`, worst first when printed."""

    def __init__(self, checks):
        self.checks = list(checks)

    @property
    def max_error(self):
        """Largest error over all tensors (0.0 when nothing was checked)."""
        return max((check.error for check in self.checks), default=0.0)

    @property
    def worst(self):
        """The TensorCheck with the largest error."""
        return max(self.checks, key=lambda check: check.error)

    def __getitem__(self, name):
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def __str__(self):
        lines = [
            f"{'tensor':<40} {'shape':<16} {'error':>10} {'index':<14} "
            f"{'analytic':>12} {'numeric':>12}"
        ]
        for check in sorted(self.checks, key=lambda c: -c.error):
            lines.append(
                f"{check.name:<40} {check.shape!s:<16} {check.error:>10.2e} "
                f"{check.index!s:<14} {check.analytic:>12.5e} {check.numeric:>12.5e}"
            )
        return "\n".join(lines)


def _as_float(value):
    return float(to_numpy(value).sum())


def _entries_to_check(shape, max_entries, rng):
    size = int(numpy.prod(shape))
    if max_entries is None or size <= max_entries:
        return numpy.arange(size)
    return numpy.sort(rng.choice(size, size=max_entries, replace=False))


def check_gradients(
    forward,
    backward,
    inputs,
    *,
    eps=1e-5,
    floor=1e-2,
    relative_floor=1e-3,
    seed=0,
    max_entries=None,
):
    """Compare backward's gradients with central finite differences of forward.

    forward(inputs) -> (out, cache) must read the float64 arrays of the dict `inputs`
    afresh on every call, because the checker perturbs them in place (and restores
    them). backward(dout, cache) -> dict of gradients for some or all of the keys of
    `inputs`; only those keys are checked. A scalar out gets a random scalar upstream
    gradient. max_entries limits how many entries of each tensor are perturbed
    (chosen at random), to bound the cost on large tensors.
    Returns a GradientReport; `report.max_error` is the largest error.
    """
    rng = numpy.random.default_rng(seed)
    for name, array in inputs.items():
        if array.dtype != numpy.float64:
            raise TypeError(
                f"gradient checks need float64 inputs; {name!r} is {array.dtype}"
            )

    out, cache = forward(inputs)
    upstream_host = rng.standard_normal(numpy.shape(to_numpy(out)))
    upstream = array_module(out).asarray(upstream_host)
    analytic = backward(upstream, cache)

    def objective():
        value, _ = forward(inputs)
        return _as_float(value * upstream)

    measured = []
    for name, grad in analytic.items():
        if grad is None:
            continue
        array = inputs[name]
        if not array.flags.c_contiguous:
            raise ValueError(
                f"input {name!r} must be C-contiguous to be perturbed in place"
            )
        flat = array.reshape(-1)  # a view, so perturbing it perturbs the input
        grad_host = to_numpy(grad).reshape(-1)
        positions = _entries_to_check(array.shape, max_entries, rng)
        if len(positions) == 0:
            continue
        numeric = numpy.zeros(len(positions))
        for n, position in enumerate(positions):
            original = float(flat[position])
            flat[position] = original + eps
            plus = objective()
            flat[position] = original - eps
            minus = objective()
            flat[position] = original
            numeric[n] = (plus - minus) / (2 * eps)
        measured.append((name, array.shape, positions, numeric, grad_host[positions]))

    largest = max(
        (max(numpy.abs(num).max(), numpy.abs(ana).max()) for *_, num, ana in measured),
        default=0.0,
    )
    tensor_floor = max(floor, relative_floor * float(largest))
    checks = []
    for name, shape, positions, numeric, chosen in measured:
        diff = numpy.abs(numeric - chosen)
        worst = int(numpy.argmax(diff))
        scale = max(float(numpy.abs(numeric).max()), float(numpy.abs(chosen).max()))
        index = numpy.unravel_index(positions[worst], shape)
        checks.append(
            TensorCheck(
                name=name,
                shape=tuple(shape),
                error=float(diff[worst]) / max(scale, tensor_floor),
                max_abs_diff=float(diff[worst]),
                index=tuple(int(i) for i in index),
                analytic=float(chosen[worst]),
                numeric=float(numeric[worst]),
                scale=scale,
            )
        )
    return GradientReport(checks)
