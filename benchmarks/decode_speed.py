"""Time greedy decoding with and without the key/value cache.

For target lengths 10, 32 and 64, this decodes one batch of sources with
`greedy_decode(..., use_cache=True)` and `use_cache=False` in the same process,
alternating the two, and prints the median milliseconds per batch and the speed-up.
EOS gets a generator bias of -1e9, so every row runs to the full target length. The
model has random weights (speed does not depend on them), float32, and the small
configuration the command line trains unless --config medium.

    python benchmarks/decode_speed.py [--repeats 5] [--batch-size 32] [--config small]
"""

import argparse
import os
import statistics
import time

import numpy

from configs import CONFIGS, model_config
from nptransformer import Transformer
from nptransformer.decoding import greedy_decode
from nptransformer.tasks import EOS

TARGET_LENGTHS = (10, 32, 64)
SOURCE_LENGTH = 10


def build_model(name):
    config = model_config(name, max_len=max(TARGET_LENGTHS))
    model = Transformer(config, seed=0)
    model.parameters()["generator.b"][EOS] = -1e9
    return model


def time_decode(model, src, length, use_cache):
    started = time.perf_counter()
    tokens = greedy_decode(model, src, max_len=length, use_cache=use_cache)
    return time.perf_counter() - started, tokens


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per mode")
    parser.add_argument("--batch-size", type=int, default=32, help="sources per batch")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
    args = parser.parse_args()

    model = build_model(args.config)
    rng = numpy.random.default_rng(0)
    vocab = CONFIGS[args.config]["vocab"]
    src = rng.integers(3, vocab, size=(args.batch_size, SOURCE_LENGTH))
    src[:, -1] = EOS

    print(
        f"numpy {numpy.__version__}, {os.cpu_count()} CPUs, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}"
    )
    print(
        f"config {args.config}, batch {args.batch_size}, source length "
        f"{SOURCE_LENGTH}, float32, median of {args.repeats} runs"
    )
    print(
        f"{'length':>6} {'cached ms':>10} {'full ms':>10} {'speed-up':>9} {'same':>5}"
    )
    for length in TARGET_LENGTHS:
        time_decode(model, src, length, use_cache=True)  # warm-up
        cached_times, full_times = [], []
        for _ in range(args.repeats):
            seconds, cached = time_decode(model, src, length, use_cache=True)
            cached_times.append(seconds)
            seconds, full = time_decode(model, src, length, use_cache=False)
            full_times.append(seconds)
        assert cached.shape == (args.batch_size, length), cached.shape
        cached_ms = 1000 * statistics.median(cached_times)
        full_ms = 1000 * statistics.median(full_times)
        same = "yes" if numpy.array_equal(cached, full) else "no"
        print(
            f"{length:>6} {cached_ms:>10.1f} {full_ms:>10.1f} "
            f"{full_ms / cached_ms:>8.1f}x {same:>5}"
        )


if __name__ == "__main__":
    main()
