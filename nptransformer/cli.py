"""Command line: `nptransformer train | decode | gradcheck`.

Errors print one line to standard error and exit with status 1 (2 for usage errors,
130 after Ctrl-C); no traceback.
"""

import argparse
import datetime
import json
import math
import os
import signal
import sys
import time

import numpy

from . import __version__
from .backend import get_backend, set_backend, to_numpy
from .checkpoint import CheckpointError, load_checkpoint, resolve_checkpoint_path
from .decoding import beam_search, greedy_decode
from .model import Transformer, TransformerConfig
from .tasks import EOS, TASKS, get_task
from .train import NonFiniteError, Trainer, TrainSettings, default_model_config

# Flags whose values are saved in a run; on --resume an explicit flag must agree.
_MODEL_FLAGS = {
    "d_model": "d_model",
    "heads": "num_heads",
    "layers": "num_encoder_layers",
    "d_ff": "d_ff",
    "dropout": "dropout",
    "dtype": "dtype",
}
_SETTING_FLAGS = {
    "eval_max_length": "eval_max_length",
    "batch_size": "batch_size",
    "seed": "seed",
    "warmup": "warmup_steps",
    "lr_factor": "lr_factor",
    "label_smoothing": "label_smoothing",
    "clip_norm": "clip_norm",
    "eval_every": "eval_every",
    "eval_size": "eval_size",
    "heldout_size": "heldout_size",
    "save_every": "save_every",
}
_TASK_FLAGS = {"task": "name", "num_symbols": "num_symbols", "max_length": "max_length"}


# Steps that take each task's default model past 99 % held-out exact-sequence
# accuracy (measured figures in docs/benchmarks.md).
DEFAULT_STEPS = {
    "copy": 1200,
    "reverse": 1200,
    "sort": 3000,
    "addition": 3000,
    "data": 3000,
}


class CommandError(Exception):
    """An error the command line reports as one line."""


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
        type=_int_in(0, 1000),
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


# ---- train ---------------------------------------------------------------------------


def _make_task(args):
    if args.data:
        if args.task or args.num_symbols or args.max_length:
            raise CommandError(
                "--data replaces the generated task; drop --task, --num-symbols "
                "and --max-length"
            )
        return get_task(
            "data",
            path=os.path.abspath(args.data),
            tokens=args.tokens or "chars",
            heldout_fraction=0.1
            if args.heldout_fraction is None
            else args.heldout_fraction,
            split_seed=args.seed or 0,
        )
    if args.tokens or args.heldout_fraction is not None:
        raise CommandError(
            "--tokens and --heldout-fraction apply only with --data FILE"
        )
    settings = {"num_symbols": args.num_symbols or 10}
    if args.max_length:
        settings["max_length"] = args.max_length
    return get_task(args.task or "reverse", **settings)


def _new_run(args):
    task = _make_task(args)
    if args.eval_max_length:
        # Fail now, not after training, if the task cannot make examples that long.
        task.inputs_of_length(numpy.random.default_rng(0), 1, args.eval_max_length)
    config = default_model_config(
        task, args.dtype or "float32", longest=args.eval_max_length or None
    )
    overrides = {
        "d_model": args.d_model,
        "num_heads": args.heads,
        "num_encoder_layers": args.layers,
        "num_decoder_layers": args.layers,
        "d_ff": args.d_ff,
        "dropout": args.dropout,
    }
    config = TransformerConfig(
        **dict(
            config.to_dict(), **{k: v for k, v in overrides.items() if v is not None}
        )
    )
    settings = TrainSettings(
        steps=args.steps or DEFAULT_STEPS[task.name], lr_factor=0.5
    )
    values = {field: getattr(args, flag) for flag, field in _SETTING_FLAGS.items()}
    settings = TrainSettings(
        **dict(vars(settings), **{k: v for k, v in values.items() if v is not None})
    )
    return Trainer(task, config, settings)


def _check_resume_flags(args, trainer):
    """Raise CommandError when an explicit flag contradicts the saved run."""
    saved = {}
    for flag, field in _MODEL_FLAGS.items():
        saved[flag] = getattr(trainer.config, field)
    for flag, field in _SETTING_FLAGS.items():
        saved[flag] = getattr(trainer.settings, field)
    task = trainer.task.settings()
    for flag, field in _TASK_FLAGS.items():
        if field in task:
            saved[flag] = task[field]
    if "path" in task:
        saved["data"] = task["path"]
        saved["tokens"] = task["tokens"]
        saved["heldout_fraction"] = task["heldout_fraction"]
    for flag, value in saved.items():
        given = getattr(args, flag)
        if flag == "data" and given is not None:
            given = os.path.abspath(given)
        if given is not None and given != value:
            raise CommandError(
                f"--{flag.replace('_', '-')} {given} contradicts the saved run's value "
                f"{value}; drop the flag to continue with {value}"
            )


def _choose_run_folder(args):
    """Return the run folder; check it, but create nothing until the run is built."""
    if args.resume:
        folder = args.resume
        if os.path.isfile(folder):  # a checkpoint file names its run folder
            folder = os.path.dirname(os.path.abspath(folder))
        if args.out and os.path.abspath(args.out) != os.path.abspath(folder):
            raise CommandError(
                f"--out {args.out} differs from --resume {folder}; "
                "a resumed run keeps its folder, so drop --out"
            )
        resolve_checkpoint_path(folder)
        return folder
    name = "data" if args.data else args.task or "reverse"
    folder = args.out or os.path.join(
        "runs", f"{name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    )
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise CommandError(
            f"--out {folder} is a file, not a folder; choose another --out"
        )
    if os.path.isdir(folder) and os.listdir(folder):
        raise CommandError(
            f"run folder {folder} exists and is not empty; choose another --out "
            f"or continue it with --resume {folder}"
        )
    return folder


class _ProgressPrinter:
    """Progress bar (tqdm) plus one fixed-width line per evaluation."""

    def __init__(self, total, initial, quiet):
        self.quiet = quiet
        self.bar = None
        if not quiet:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=initial,
                unit="step",
                dynamic_ncols=True,
                file=sys.stderr,
            )

    def __call__(self, event, info):
        if event == "step" and self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(
                f"loss {info['loss']:.4f} lr {info['lr']:.2e} "
                f"{info['tokens_per_second']:,.0f} tok/s",
                refresh=False,
            )
        elif event == "eval":
            line = (
                f"step {info['step']:>6} | loss {info['loss']:8.4f} | lr {info['lr']:.2e} | "
                f"accuracy {info['accuracy']:6.1%}"
            )
            self.write(line)

    def write(self, line):
        if self.bar is not None:
            self.bar.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _sample_decodes(trainer, count=3):
    batch = trainer.heldout.subset(slice(0, count))
    predicted = greedy_decode(trainer.model, batch.src, max_len=batch.tgt_out.shape[1])
    task = trainer.task
    lines = []
    for row in range(min(count, len(batch))):
        source = task.format_ids(batch.src[row])
        expected = task.format_ids(batch.tgt_out[row])
        output = task.format_ids(predicted[row])
        mark = "ok" if output == expected else "WRONG"
        lines.append(f"  {source:<30} -> {output:<30} ({mark}, expected {expected})")
    return lines


def _write_outputs(trainer, folder, accuracy, accuracy_by_length):
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    from .plots import plot_accuracy_by_length, plot_attention, plot_history

    history = trainer.history
    metrics = {
        "task": trainer.task.settings(),
        "step": trainer.step,
        "eval_accuracy": accuracy,
        "heldout_size": len(trainer.heldout),
        "final_loss": history["loss"][-1] if history["loss"] else None,
        "train_seconds": trainer.elapsed,
        "num_parameters": trainer.model.num_parameters(),
        "config": trainer.config.to_dict(),
        "history": history,
    }
    if accuracy_by_length:
        metrics["accuracy_by_length"] = {
            str(k): v for k, v in accuracy_by_length.items()
        }
        metrics["train_max_length"] = trainer.task.max_length
    with open(os.path.join(folder, "metrics.json"), "w") as file:
        json.dump(metrics, file, indent=1)
    plot_history(history, os.path.join(folder, "training_curves.png"))
    if accuracy_by_length:
        plot_accuracy_by_length(
            accuracy_by_length,
            trainer.task.max_length,
            os.path.join(folder, "accuracy_by_length.png"),
        )

    example = trainer.heldout.subset(slice(0, 1))
    length = int((example.src[0] != 0).sum())
    src = example.src[:, :length]
    output = greedy_decode(trainer.model, src, max_len=trainer.task.max_target_length)
    out_length = (
        int(numpy.argmax(output[0] == EOS)) + 1
        if (output[0] == EOS).any()
        else output.shape[1]
    )
    tgt_in = numpy.concatenate([[[1]], output[:, : out_length - 1]], axis=1)
    _, weights = trainer.model.forward(src, tgt_in, return_attention=True)
    last = trainer.config.num_decoder_layers - 1
    plot_attention(
        to_numpy(weights[f"decoder.layers.{last}.cross_attn"])[0],
        query_labels=[str(t) for t in tgt_in[0]],
        key_labels=[str(t) for t in src[0]],
        title=f"cross-attention, decoder layer {last} (query: output so far, key: source)",
        path=os.path.join(folder, "attention.png"),
    )


def command_train(args):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=args.threads, user_api="blas"):
        return _train(args)


def _train(args):
    folder = _choose_run_folder(args)
    checkpoint_path = os.path.join(folder, "checkpoint.npz")
    if args.resume:
        trainer = Trainer.from_checkpoint(checkpoint_path)
        _check_resume_flags(args, trainer)
        if args.steps is not None:
            trainer.settings.steps = args.steps
        if trainer.step >= trainer.settings.steps:
            raise CommandError(
                f"the run in {folder} is already at step {trainer.step}; "
                f"pass --steps larger than {trainer.step} to train further"
            )
    else:
        trainer = _new_run(args)
        os.makedirs(folder, exist_ok=True)

    print(
        f"task {trainer.task.name} (symbols {trainer.task.num_symbols}, lengths 1-"
        f"{trainer.task.max_length}) | {trainer.model.num_parameters():,} parameters | "
        f"{trainer.config.dtype} | run folder {folder}",
        flush=True,
    )
    if args.resume:
        print(f"resuming from step {trainer.step}", flush=True)

    progress = _ProgressPrinter(trainer.settings.steps, trainer.step, args.quiet)
    interrupted = []

    def request_stop(signum, frame):
        interrupted.append(signum)
        trainer.stop_requested = True

    previous_handler = signal.signal(signal.SIGINT, request_stop)
    try:
        trainer.run(callback=progress, checkpoint_path=checkpoint_path)
    except NonFiniteError as error:
        progress.close()
        if os.path.exists(checkpoint_path):
            kept = f"the last saved checkpoint in {folder} is kept"
        else:
            kept = "no checkpoint was saved yet (--save-every N saves along the way)"
        raise CommandError(
            f"{error}; training stopped, {kept}; try a lower --lr-factor or a longer "
            "--warmup"
        ) from None
    finally:
        signal.signal(signal.SIGINT, previous_handler)
        progress.close()

    trainer.save(checkpoint_path)
    if interrupted:
        print(
            f"interrupted at step {trainer.step}; checkpoint saved. Resume with:\n"
            f"  nptransformer train --resume {folder} --steps {trainer.settings.steps}",
            file=sys.stderr,
        )
        return 130

    try:
        _report(trainer, folder)
    except KeyboardInterrupt:
        print(
            f"interrupted after training; the checkpoint in {folder} holds all "
            f"{trainer.step} steps, but metrics.json and the figures were not written",
            file=sys.stderr,
        )
        return 130
    return 0


def _report(trainer, folder):
    """Evaluate on the whole held-out set, print samples, write metrics and figures."""
    started = time.perf_counter()
    accuracy = trainer.evaluate()
    print(
        f"held-out exact-sequence accuracy: {accuracy:.1%} on {len(trainer.heldout)} "
        f"sequences ({time.perf_counter() - started:.1f} s); "
        f"training took {trainer.elapsed:.1f} s for {trainer.step} steps"
    )
    print("sample decodes (source -> output):")
    for line in _sample_decodes(trainer):
        print(line)
    accuracy_by_length = {}
    longest = trainer.settings.eval_max_length
    if longest:
        accuracy_by_length = trainer.evaluate_by_length(longest)
        print(f"accuracy by length (trained on 1-{trainer.task.max_length}):")
        for length, value in accuracy_by_length.items():
            marker = (
                "" if length <= trainer.task.max_length else "  (longer than training)"
            )
            print(f"  length {length:>3}: {value:6.1%}{marker}")
    _write_outputs(trainer, folder, accuracy, accuracy_by_length)
    figures = "training_curves.png, attention.png"
    if accuracy_by_length:
        figures += ", accuracy_by_length.png"
    print(f"wrote {folder}/checkpoint.npz, metrics.json, {figures}")


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
            f"checkpoint {args.checkpoint} does not match its config: {error}"
        ) from None

    symbols = task.parse_source(args.symbols)
    if len(symbols) + 1 > config.max_len:
        raise CommandError(
            f"the input has {len(symbols)} tokens, more than the model's max_len "
            f"{config.max_len} allows (EOS included); shorten it"
        )
    try:
        trained_length = task.max_source_length
    except ValueError:  # a data task loaded without its file
        trained_length = None
    if trained_length and len(symbols) + 1 > trained_length:
        print(
            f"note: the input has {len(symbols)} tokens, but training saw at most "
            f"{trained_length - 1}; expect a wrong output",
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
