"""Time a training step of nptransformer against the same step in PyTorch, on the CPU.

Both sides start from the same float32 weights (PyTorch's copy comes from
`nptransformer.interop.to_torch`), use dropout 0 and train on the same pre-built
batches of full-length reverse-task sequences. One step is forward, cross-entropy
ignoring PAD, backward, gradient clipping to norm 1.0 and an Adam update with the
same learning rate: `nptransformer.train.train_step` for ours, the equivalent
PyTorch calls for theirs. The two run alternately, one step each, in one process,
which spreads changing load from other programs over both sides. Prints mean and median milliseconds
per step after the warmup steps, the ratio ours / PyTorch, and both final losses.

    python benchmarks/vs_pytorch.py [--steps 30] [--warmup 2] [--config all]

--config is small, medium or all (the default). Thread counts come from environment
variables read when the libraries load: OPENBLAS_NUM_THREADS for NumPy's OpenBLAS and
OMP_NUM_THREADS for PyTorch. On a machine shared with other busy programs, multi-threaded BLAS and
OpenMP can run many times slower than one thread, so the header prints the settings
and a fair comparison sets both, for example:

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/vs_pytorch.py
"""

import argparse
import os
import statistics
import time

import numpy
import torch
from torch.nn import functional as F

from configs import CONFIGS, model_config
from nptransformer import Adam, NoamSchedule, Transformer
from nptransformer.interop import to_torch
from nptransformer.tasks import PAD, get_task
from nptransformer.train import train_step


def build_batches(spec, count, seed):
    """Reverse-task batches whose rows all have `length` symbols (no padding)."""
    task = get_task("reverse", num_symbols=spec["vocab"] - 3, max_length=spec["length"])
    rng = numpy.random.default_rng(seed)
    batches = []
    for _ in range(count):
        inputs = [
            rng.integers(3, spec["vocab"], size=spec["length"])
            for _ in range(spec["batch"])
        ]
        batches.append(task.make_batch(inputs))
    return batches


def torch_train_step(module, optimizer, batch_tensors, lr, clip_norm=1.0):
    """Run the PyTorch equivalent of train_step and return the loss as a float."""
    src, tgt_in, tgt_out = batch_tensors
    logits = module(src, tgt_in)  # (B, T, V)
    loss = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), ignore_index=PAD
    )
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(module.parameters(), clip_norm)
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.step()
    return loss.item()


def run(name, steps, warmup, seed):
    """Train both models for warmup + steps steps and return the timing summary."""
    spec = CONFIGS[name]
    config = model_config(name)
    model = Transformer(config, seed=seed)
    module = to_torch(model)
    optimizer = Adam(model.parameters())
    optimizer_t = torch.optim.Adam(
        module.parameters(), lr=0.0, betas=(0.9, 0.98), eps=1e-9
    )
    schedule = NoamSchedule(config.d_model, warmup_steps=4000)
    batches = build_batches(spec, warmup + steps, seed)
    batch_tensors = [
        tuple(torch.as_tensor(a) for a in (b.src, b.tgt_in, b.tgt_out)) for b in batches
    ]

    seconds, seconds_t = [], []
    loss = loss_t = None
    for step in range(1, warmup + steps + 1):
        batch = batches[step - 1]
        started = time.perf_counter()
        loss, lr, _ = train_step(model, optimizer, schedule, batch, step, clip_norm=1.0)
        middle = time.perf_counter()
        loss_t = torch_train_step(module, optimizer_t, batch_tensors[step - 1], lr)
        finished = time.perf_counter()
        if step > warmup:
            seconds.append(middle - started)
            seconds_t.append(finished - middle)

    return {
        "name": name,
        "mean": 1000 * statistics.mean(seconds),
        "median": 1000 * statistics.median(seconds),
        "mean_t": 1000 * statistics.mean(seconds_t),
        "median_t": 1000 * statistics.median(seconds_t),
        "loss": loss,
        "loss_t": loss_t,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", type=int, default=30, help="timed steps per side (default 30)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=2,
        help="untimed steps per side before timing starts (default 2)",
    )
    parser.add_argument(
        "--config",
        choices=["small", "medium", "all"],
        default="all",
        help="which configuration to time (default all)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the initial weights and the batches (default 0)",
    )
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be at least 1 and --warmup non-negative")

    names = list(CONFIGS) if args.config == "all" else [args.config]
    thread_settings = ", ".join(
        f"{variable}={os.environ.get(variable, 'unset')}"
        for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    )
    print(
        f"numpy {numpy.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {os.cpu_count()} CPUs, "
        f"{thread_settings}"
    )
    print(
        f"float32, dropout 0, {args.steps} timed steps after {args.warmup} warmup "
        "steps, ours and PyTorch alternating step by step"
    )
    header = (
        f"{'config':<8} {'ours ms/step':>22} {'PyTorch ms/step':>22} "
        f"{'ours/PyTorch':>12} {'final loss ours / PyTorch':>27}"
    )
    print(header)
    print(f"{'':<8} {'mean (median)':>22} {'mean (median)':>22}")
    for name in names:
        result = run(name, args.steps, args.warmup, args.seed)
        ours = f"{result['mean']:.1f} ({result['median']:.1f})"
        theirs = f"{result['mean_t']:.1f} ({result['median_t']:.1f})"
        ratio = result["mean"] / result["mean_t"]
        losses = f"{result['loss']:.4f} / {result['loss_t']:.4f}"
        print(f"{name:<8} {ours:>22} {theirs:>22} {ratio:>12.2f} {losses:>27}")


if __name__ == "__main__":
    main()
