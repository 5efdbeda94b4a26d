"""Train the same model on NumPy and on CuPy and compare loss curves and step times.

For a GPU machine with CuPy installed (`pip install -e '.[gpu]'`). Both runs start
from the same weights, see the same batches, and use dropout 0, so their losses
differ only by floating-point round-off (different summation orders on the GPU).
Prints both curves side by side, the largest relative loss difference, and the
median step time of each backend. Exits non-zero when the curves disagree.

    python benchmarks/gpu_check.py [--steps 50] [--dtype float32] [--config small]
"""

import argparse
import statistics
import sys
import time

import numpy

from configs import CONFIGS, model_config
from nptransformer import Transformer, set_backend
from nptransformer.backend import get_backend
from nptransformer.optim import Adam, NoamSchedule
from nptransformer.tasks import get_task
from nptransformer.train import train_step


def run(backend, name, dtype, steps, initial_state):
    spec = CONFIGS[name]
    set_backend(backend)
    task = get_task("reverse", num_symbols=spec["vocab"] - 3, max_length=spec["length"])
    config = model_config(name, dtype=dtype)
    model = Transformer(config, seed=0)
    model.load_state_dict(initial_state)
    optimizer = Adam(model.parameters())
    schedule = NoamSchedule(config.d_model, warmup_steps=100, factor=0.5)
    data_rng = numpy.random.default_rng(0)
    losses, times = [], []
    for step in range(1, steps + 1):
        batch = task.sample_batch(data_rng, spec["batch"])
        started = time.perf_counter()
        loss, _, _ = train_step(model, optimizer, schedule, batch, step)
        if backend == "cupy":
            get_backend().cuda.Device().synchronize()
        times.append(time.perf_counter() - started)
        losses.append(loss)
    return numpy.array(losses), times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="largest allowed relative loss difference "
        "(default 1e-3 in float32, 1e-9 in float64)",
    )
    args = parser.parse_args()
    tolerance = args.tolerance or (1e-3 if args.dtype == "float32" else 1e-9)

    set_backend("numpy")
    reference = Transformer(model_config(args.config, dtype=args.dtype), seed=0)
    initial_state = reference.state_dict()

    numpy_losses, numpy_times = run(
        "numpy", args.config, args.dtype, args.steps, initial_state
    )
    cupy_losses, cupy_times = run(
        "cupy", args.config, args.dtype, args.steps, initial_state
    )
    set_backend("numpy")

    print(f"{'step':>5} {'numpy loss':>12} {'cupy loss':>12} {'rel. diff':>10}")
    relative = numpy.abs(cupy_losses - numpy_losses) / numpy.abs(numpy_losses)
    for step in range(0, args.steps, max(1, args.steps // 10)):
        print(
            f"{step + 1:>5} {numpy_losses[step]:>12.6f} {cupy_losses[step]:>12.6f} "
            f"{relative[step]:>10.2e}"
        )
    # The first steps include CuPy's kernel compilation; leave them out of the timing.
    numpy_ms = 1000 * statistics.median(numpy_times[5:] or numpy_times)
    cupy_ms = 1000 * statistics.median(cupy_times[5:] or cupy_times)
    print(
        f"config {args.config}, {args.dtype}: numpy {numpy_ms:.1f} ms/step, "
        f"cupy {cupy_ms:.1f} ms/step, speed-up {numpy_ms / cupy_ms:.1f}x"
    )
    print(
        f"largest relative loss difference {relative.max():.2e} (tolerance {tolerance:g})"
    )
    return 0 if relative.max() <= tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
