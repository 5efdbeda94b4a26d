"""The `nptransformer train` command: run folders, resume checks, progress and reports.

The parser and the other commands live in cli.py. This module turns parsed arguments
into a Trainer, runs it with one line per evaluation, and writes the run folder.
"""

import datetime
import json
import os
import signal
import sys
import time

import numpy

from .backend import to_numpy
from .checkpoint import resolve_checkpoint_path
from .decoding import greedy_decode
from .model import TransformerConfig
from .tasks import EOS, get_task
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
    _check_memory(task, config, settings)
    return Trainer(task, config, settings)


def estimate_memory(task, config, settings):
    """Estimate the peak bytes a run needs: held-out set, training caches, evaluation.

    NOTE: an estimate from the largest arrays (attention scores and weights, per-layer
    activations, logits and the held-out set), meant to be within a factor of about
    two. It exists to refuse sizes that cannot fit before anything is allocated.
    """
    itemsize = numpy.dtype(config.dtype).itemsize
    longest = max(task.max_length, settings.eval_max_length)
    S = max(task.max_source_length, task.source_length(longest))
    T = max(task.max_target_length, task.target_length(longest))
    B, H, D, F = settings.batch_size, config.num_heads, config.d_model, config.d_ff
    V = config.tgt_vocab_size
    encoder, decoder = config.num_encoder_layers, config.num_decoder_layers

    heldout = settings.heldout_size * (S + 2 * T) * 8  # three int64 arrays
    # Training keeps every layer's caches: scores and weights (B, H, Tq, Tk) for each
    # attention block, about 12 (B, L, D) and 3 (B, L, F) activations per layer.
    attention = 3 * B * H * itemsize * (encoder * S * S + decoder * (T * T + T * S))
    activations = B * itemsize * (encoder * S + decoder * T) * (12 * D + 3 * F)
    logits = 4 * B * T * V * itemsize
    # Evaluation decodes up to 500 rows at once, one encoder layer at a time.
    rows = min(500, max(settings.heldout_size, 200))
    evaluation = rows * itemsize * (3 * H * S * S + 2 * decoder * (S + T) * D + 2 * V)
    return heldout + attention + activations + logits + evaluation


def _check_memory(task, config, settings):
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return  # the platform does not report free memory; nothing to compare with
    needed = estimate_memory(task, config, settings)
    if needed > 0.8 * available:
        raise CommandError(
            f"this run needs about {needed / 2**30:.1f} GiB of memory, but only "
            f"{available / 2**30:.1f} GiB is free; lower --batch-size, --max-length, "
            "--heldout-size, --eval-max-length or --d-model"
        )


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
        if os.path.isfile(folder):
            if os.path.basename(folder) != "checkpoint.npz":
                raise CommandError(
                    f"--resume takes a run folder or its checkpoint.npz, got {folder}; "
                    "a resumed run saves to checkpoint.npz in its folder"
                )
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
        # A moved data file may be named again with --data; its SHA-256 must match.
        overrides = {"path": os.path.abspath(args.data)} if args.data else None
        trainer = Trainer.from_checkpoint(checkpoint_path, task_overrides=overrides)
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
    try:
        return _run(args, trainer, folder, checkpoint_path)
    finally:
        if not args.resume and os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)  # a run that failed before saving leaves nothing behind


def _run(args, trainer, folder, checkpoint_path):

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
