"""Time one training step of nptransformer, and the matrix products inside it.

For a small and a medium configuration (float32, dropout 0.1), this prints the median
milliseconds per step (forward, loss, backward, clipping, Adam update on a batch made
beforehand), target tokens per second, and the median time of the same step's matrix
products replayed alone on arrays of the same shapes and layouts. The ratio
"matmul floor / step" says how much of the step is spent in BLAS; the rest is
elementwise NumPy work and Python overhead. Both are measured in the same process,
interleaved, so a busy machine slows them alike.

    python benchmarks/train_step.py [--steps 30] [--config small|medium|both]
"""

import argparse
import os
import statistics
import sys
import time

import numpy

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests")
)

from nptransformer import Transformer, set_backend  # noqa: E402
from nptransformer.optim import Adam, NoamSchedule  # noqa: E402
from nptransformer.tasks import get_task  # noqa: E402
from nptransformer.train import train_step  # noqa: E402
from strict_backend import DeviceArray, strict_device  # noqa: E402

from configs import CONFIGS, model_config  # noqa: E402


def build(name, seed=0):
    spec = CONFIGS[name]
    task = get_task("reverse", num_symbols=spec["vocab"] - 3, max_length=spec["length"])
    config = model_config(name, dropout=0.1)
    model = Transformer(config, seed=seed)
    optimizer = Adam(model.parameters())
    schedule = NoamSchedule(config.d_model, warmup_steps=4000)
    rng = numpy.random.default_rng(seed)
    # Full-length sequences, so every configuration runs at its stated length.
    inputs = [
        rng.integers(3, spec["vocab"], size=spec["length"])
        for _ in range(spec["batch"])
    ]
    batch = task.make_batch(inputs)
    return model, optimizer, schedule, batch


def record_matmuls(name):
    """Run one step on the recording stand-in; return the matmul operand layouts."""
    shapes = []
    original = DeviceArray.__array_ufunc__

    def recording(self, ufunc, method, *inputs, **kwargs):
        if ufunc is numpy.matmul and method == "__call__":
            shapes.append(
                tuple(
                    (tuple(a.shape), bool(a.flags.c_contiguous), a.dtype.str)
                    for a in inputs
                )
            )
        return original(self, ufunc, method, *inputs, **kwargs)

    DeviceArray.__array_ufunc__ = recording
    set_backend(strict_device)
    try:
        model, optimizer, schedule, batch = build(name)
        train_step(model, optimizer, schedule, batch, step=1)
    finally:
        set_backend("numpy")
        DeviceArray.__array_ufunc__ = original
    return shapes


def make_operand(shape, c_contiguous, dtype, rng):
    array = rng.standard_normal(shape).astype(dtype)
    if not c_contiguous and len(shape) >= 2:
        # Same shape, transposed memory layout (what .T and swapaxes produce).
        array = numpy.ascontiguousarray(array.swapaxes(-1, -2)).swapaxes(-1, -2)
    return array


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per config")
    parser.add_argument("--config", choices=("small", "medium", "both"), default="both")
    args = parser.parse_args()
    names = ["small", "medium"] if args.config == "both" else [args.config]

    print(
        f"numpy {numpy.__version__}, {os.cpu_count()} CPUs, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}"
    )
    print(
        f"{'config':<8} {'ms/step':>9} {'tokens/s':>10} {'matmul ms':>10} {'floor/step':>10}"
    )
    for name in names:
        layouts = record_matmuls(name)
        rng = numpy.random.default_rng(0)
        operands = [
            tuple(make_operand(s, c, d, rng) for s, c, d in layout)
            for layout in layouts
        ]
        model, optimizer, schedule, batch = build(name)
        tokens = batch.num_target_tokens()
        for warmup in range(3):
            train_step(model, optimizer, schedule, batch, step=warmup + 1)
        step_times, matmul_times = [], []
        for step in range(args.steps):
            started = time.perf_counter()
            train_step(model, optimizer, schedule, batch, step=step + 4)
            step_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            for a, b in operands:
                a @ b
            matmul_times.append(time.perf_counter() - started)
        step_ms = 1000 * statistics.median(step_times)
        matmul_ms = 1000 * statistics.median(matmul_times)
        print(
            f"{name:<8} {step_ms:>9.1f} {tokens / step_ms * 1000:>10,.0f} "
            f"{matmul_ms:>10.1f} {matmul_ms / step_ms:>10.0%}   ({len(layouts)} matmuls)"
        )


if __name__ == "__main__":
    main()
