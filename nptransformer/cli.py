"""Command line: `nptransformer train | decode | gradcheck`.

Errors print one line to standard error and exit with status 1 (2 for usage errors,
130 after Ctrl-C); no traceback. The train command lives in cli_train.py.
"""

import argparse
import math
import sys

import numpy

from . import __version__
from .backend import get_backend, set_backend
from .checkpoint import CheckpointError, load_checkpoint
from .cli_train import CommandError, command_train
from .decoding import beam_search, greedy_decode
from .model import Transformer, TransformerConfig
from .tasks import EOS, TASKS, get_task
from .train import NonFiniteError


def _int_in(low, high):
    """Return an argparse type: an integer from low to high inclusive."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer from {low} to {high}, got {text!r}"
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"expected an integer from {low} to {high}, got {value}"
            )
        return value

    return parse


def _finite_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


class _OneLineParser(argparse.ArgumentParser):
    """Report usage errors in one line, with a pointer to --help."""

    def error(self, message):
        if "required: symbols" in message:
            message += (
                "; an input that starts with '-' goes after --, as in -- \"-1+2\""
            )
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = _OneLineParser(
        prog="nptransformer",
        description="A NumPy Transformer with hand-written backward passes.",
    )
    parser.add_argument(
        "--version", action="version", version=f"nptransformer {__version__}"
    )
    parser.add_argument(
        "--backend",
        choices=("numpy", "cupy"),
        default=None,
        help="array library (default: numpy, or $NPTRANSFORMER_BACKEND)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train on a task and write a run folder")
    train.add_argument(
        "--task",
        choices=sorted(TASKS),
        default=None,
        help="task to learn (default: reverse)",
    )
    train.add_argument(
        "--data",
        metavar="FILE",
        default=None,
        help="train on tab-separated source/target lines instead of a generated task",
    )
    train.add_argument(
        "--tokens",
        choices=("chars", "words"),
        default=None,
        help="with --data: split text into characters or words (default: chars)",
    )
    train.add_argument(
        "--heldout-fraction",
        type=_finite_float,
        default=None,
        help="with --data: share of pairs held out for evaluation (default: 0.1)",
    )
    train.add_argument(
        "--eval-max-length",
        type=_int_in(0, 100),
        default=None,
        help="after training, report accuracy for every length up to this one, "
        "beyond the training lengths too (default: 0 = off)",
    )
    train.add_argument(
        "--steps",
        type=_int_in(1, 10**7),
        default=None,
        help="total optimizer steps, counting any already done (default: 1200 for "
        "copy and reverse, 3000 for sort, addition and --data)",
    )
    train.add_argument(
        "--batch-size",
        type=_int_in(1, 100_000),
        default=None,
        help="sequences per batch (default: 64)",
    )
    train.add_argument(
        "--seed",
        type=_int_in(0, 2**32 - 1),
        default=None,
        help="random seed (default: 0)",
    )
    train.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default=None,
        help="floating-point type (default: float32)",
    )
    train.add_argument(
        "--num-symbols",
        type=_int_in(1, 100_000),
        default=None,
        help="distinct symbols in the task (default: 10)",
    )
    train.add_argument(
        "--max-length",
        type=_int_in(1, 1000),
        default=None,
        help="maximum sequence length in symbols, or digits per operand for addition "
        "(default: 10; 3 for addition)",
    )
    train.add_argument(
        "--d-model",
        type=_int_in(1, 8192),
        default=None,
        help="model width (default: 64)",
    )
    train.add_argument(
        "--heads",
        type=_int_in(1, 1024),
        default=None,
        help="attention heads (default: 4)",
    )
    train.add_argument(
        "--layers",
        type=_int_in(1, 64),
        default=None,
        help="encoder layers and decoder layers each (default: 2)",
    )
    train.add_argument(
        "--d-ff",
        type=_int_in(1, 65_536),
        default=None,
        help="feed-forward hidden width (default: 256)",
    )
    train.add_argument(
        "--dropout",
        type=_finite_float,
        default=None,
        help="dropout probability (default: 0.0)",
    )
    train.add_argument(
        "--warmup",
        type=_int_in(1, 10**7),
        default=None,
        help="learning-rate warmup steps (default: 200)",
    )
    train.add_argument(
        "--lr-factor",
        type=_finite_float,
        default=None,
        help="factor on the warmup schedule's learning rate (default: 0.5)",
    )
    train.add_argument(
        "--label-smoothing",
        type=_finite_float,
        default=None,
        help="label smoothing epsilon (default: 0.0)",
    )
    train.add_argument(
        "--clip-norm",
        type=_finite_float,
        default=None,
        help="gradient-norm clipping threshold, 0 = off (default: 1.0)",
    )
    train.add_argument(
        "--eval-every",
        type=_int_in(0, 10**7),
        default=None,
        help="evaluate every N steps, 0 = only at the end (default: 100)",
    )
    train.add_argument(
        "--eval-size",
        type=_int_in(1, 10**6),
        default=None,
        help="held-out sequences used by periodic evaluation (default: 200)",
    )
    train.add_argument(
        "--heldout-size",
        type=_int_in(1, 10**6),
        default=None,
        help="size of the held-out set, all used at the end (default: 1000)",
    )
    train.add_argument(
        "--save-every",
        type=_int_in(0, 10**7),
        default=None,
        help="save a checkpoint every N steps, 0 = only at the end (default: 0)",
    )
    train.add_argument(
        "--out", default=None, help="run folder (default: runs/TASK-YYYYmmdd-HHMMSS)"
    )
    train.add_argument(
        "--resume",
        metavar="DIR",
        default=None,
        help="continue the run in DIR until --steps",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument(
        "--threads",
        type=_int_in(1, 1024),
        default=1,
        help="BLAS threads for the matrix products (default: 1, the fastest for the "
        "default model and on a busy machine; larger models gain from more)",
    )

    decode = commands.add_parser(
        "decode", help="decode one sequence with a trained model"
    )
    decode.add_argument(
        "--checkpoint", required=True, help="checkpoint file or run folder"
    )
    decode.add_argument(
        "--beam",
        type=_int_in(1, 64),
        default=1,
        help="beam size; 1 decodes greedily (default: 1)",
    )
    decode.add_argument(
        "symbols",
        help='the input: symbol ids such as "3 5 7 4", two numbers such as "12+345" '
        "for addition, or text for a model trained with --data",
    )

    gradcheck = commands.add_parser(
        "gradcheck", help="check every op's gradient in float64"
    )
    gradcheck.add_argument(
        "--seed", type=_int_in(0, 2**32 - 1), default=0, help="random seed (default: 0)"
    )
    return parser


# ---- decode --------------------------------------------------------------------------


def command_decode(args):
    arrays, meta = load_checkpoint(args.checkpoint)
    try:
        config = TransformerConfig.from_dict(meta["config"])
        task_settings = dict(meta["task"])
        name = task_settings.pop("name")
        if name == "data":
            task_settings["load_pairs"] = False  # the vocabulary is in the checkpoint
        task = get_task(name, **task_settings)
    except (KeyError, TypeError, ValueError) as error:
        raise CommandError(
            f"checkpoint {args.checkpoint} has invalid settings ({error})"
        ) from None
    model = Transformer(config)
    params = {
        key[len("param/") :]: value
        for key, value in arrays.items()
        if key.startswith("param/")
    }
    try:
        model.load_state_dict(params)
    except ValueError as error:
        raise CommandError(
            f"checkpoint {args.checkpoint} cannot be loaded into its model: {error}"
        ) from None

    symbols = task.parse_source(args.symbols)
    if len(symbols) + 1 > config.max_len:
        raise CommandError(
            f"the input has {len(symbols)} tokens, more than the model's max_len "
            f"{config.max_len} allows (EOS included); shorten it"
        )
    length = task.example_length(symbols)
    if task.max_length and length > task.max_length:
        print(
            f"note: the input has length {length}, but training saw at most "
            f"{task.max_length}; expect a wrong output",
            file=sys.stderr,
        )
    src = numpy.array([symbols + [EOS]], dtype=numpy.int64)
    max_len = min(config.max_len, 2 * len(symbols) + 10)
    if args.beam > 1:
        output = beam_search(model, src, max_len=max_len, beam_size=args.beam)
    else:
        output = greedy_decode(model, src, max_len=max_len)
    print(task.format_ids(output[0]))
    return 0


# ---- gradcheck -----------------------------------------------------------------------


def command_gradcheck(args):
    from .op_checks import run_all

    reports = run_all(seed=args.seed)
    tolerance = 1e-7
    print(
        f"{'op':<22} {'max error':>10}  {'worst tensor':<14} result (tolerance {tolerance:g})"
    )
    failed = 0
    for name, report in reports.items():
        ok = report.max_error <= tolerance
        failed += not ok
        print(
            f"{name:<22} {report.max_error:>10.2e}  {report.worst.name:<14} "
            f"{'ok' if ok else 'FAILED'}"
        )
    return 1 if failed else 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {
        "train": command_train,
        "decode": command_decode,
        "gradcheck": command_gradcheck,
    }
    try:
        if args.backend:
            set_backend(args.backend)
        get_backend()  # applies NPTRANSFORMER_BACKEND, so a bad value is reported here
        return commands[args.command](args)
    except MemoryError:
        print(
            f"nptransformer {args.command}: error: out of memory; use smaller sizes "
            "(--batch-size, --d-model, --max-length, --heldout-size, --beam)",
            file=sys.stderr,
        )
        return 1
    except FileNotFoundError as error:
        print(
            f"nptransformer {args.command}: error: file not found: {error.filename}",
            file=sys.stderr,
        )
        return 1
    except (
        CommandError,
        CheckpointError,
        NonFiniteError,
        ValueError,
        TypeError,
        RuntimeError,
        OSError,
    ) as error:
        print(f"nptransformer {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Training installs its own handler that saves first; this covers the rest.
        print(f"nptransformer {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
