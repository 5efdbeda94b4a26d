"""The training loop: batches, loss, backward, clipping, Adam, evaluation, checkpoints.

The library prints nothing: progress goes to an optional callback, and `Trainer.run`
returns the history for plotting. The command line (cli.py) adds the progress bar.
"""

import dataclasses
import math
import time

import numpy

from .backend import get_backend, to_numpy
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint, split_state
from .decoding import exact_match, greedy_decode
from .model import Transformer, TransformerConfig
from .ops import cross_entropy_backward, cross_entropy_forward
from .optim import Adam, NoamSchedule, clip_grad_norm
from .tasks import PAD, data_streams, get_task, heldout_set


@dataclasses.dataclass
class TrainSettings:
    """Everything that decides a run besides the model config and the task."""

    steps: int = 1000
    batch_size: int = 64
    seed: int = 0
    warmup_steps: int = 200
    lr_factor: float = 1.0
    label_smoothing: float = 0.0
    # NOTE: the paper does not clip gradients. Clipping at norm 1.0 guards the short,
    # high-learning-rate toy runs against one bad batch; no run without it was compared.
    clip_norm: float = 1.0
    eval_every: int = 100
    eval_size: int = 200
    heldout_size: int = 1000
    save_every: int = 0
    eval_max_length: int = 0

    def __post_init__(self):
        for name in (
            "steps",
            "batch_size",
            "warmup_steps",
            "eval_size",
            "heldout_size",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("eval_every", "save_every", "eval_max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 0:
                raise ValueError(
                    f"{name} must be a non-negative integer (0 = off), got {value!r}"
                )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(
                f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}"
            )
        if not (self.lr_factor > 0 and math.isfinite(self.lr_factor)):
            raise ValueError(f"lr_factor must be positive, got {self.lr_factor!r}")
        if not (self.clip_norm >= 0 and math.isfinite(self.clip_norm)):
            raise ValueError(
                f"clip_norm must be non-negative (0 = off), got {self.clip_norm!r}"
            )


class NonFiniteError(FloatingPointError):
    """The loss or a gradient became NaN or infinite."""


def _first_non_finite(arrays):
    for name, array in arrays.items():
        if not bool(get_backend().isfinite(array).all()):
            return name
    return None


def train_step(
    model, optimizer, schedule, batch, step, label_smoothing=0.0, clip_norm=1.0
):
    """Run forward, loss, backward, clipping and one Adam update on `batch`.

    step is the 1-based optimizer step the schedule uses. Returns (loss, lr, grad_norm)
    as Python floats. Raises NonFiniteError naming the step and the tensor when the
    loss or a gradient is NaN or infinite (before any parameter changes), or when the
    update itself made a parameter non-finite (a learning rate far too large). NumPy's
    overflow warnings are silenced here because these checks report the same events
    with the step and tensor named.
    """
    with numpy.errstate(over="ignore", invalid="ignore"):
        return _train_step(
            model, optimizer, schedule, batch, step, label_smoothing, clip_norm
        )


def _train_step(model, optimizer, schedule, batch, step, label_smoothing, clip_norm):
    xp = get_backend()
    tgt_out = xp.asarray(batch.tgt_out)
    logits = model.forward(batch.src, batch.tgt_in, training=True)
    loss, loss_cache = cross_entropy_forward(
        logits, tgt_out, label_smoothing=label_smoothing, ignore_index=PAD
    )
    loss_value = float(loss)
    if not math.isfinite(loss_value):
        raise NonFiniteError(f"step {step}: the loss is {loss_value}")
    model.zero_grad()
    model.backward(cross_entropy_backward(loss_cache))
    grads = model.gradients()
    if clip_norm:
        grad_norm = clip_grad_norm(grads, clip_norm)
    else:
        grad_norm = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
    if not math.isfinite(grad_norm):
        name = _first_non_finite(grads)
        raise NonFiniteError(f"step {step}: the gradient of {name} is not finite")
    lr = schedule.lr(step)
    optimizer.step(grads, lr=lr)
    name = _first_non_finite(model.parameters())
    if name is not None:
        raise NonFiniteError(
            f"step {step}: the update made {name} non-finite (learning rate {lr:.3g})"
        )
    return loss_value, lr, grad_norm


def evaluate(model, batch, batch_size=500):
    """Return the exact-sequence accuracy (a fraction) of greedy decoding on `batch`."""
    correct = 0
    for start in range(0, len(batch), batch_size):
        part = batch.subset(slice(start, start + batch_size))
        predicted = greedy_decode(model, part.src, max_len=part.tgt_out.shape[1])
        correct += int(exact_match(predicted, part.tgt_out).sum())
    return correct / len(batch)


def default_model_config(task, dtype="float32", longest=None):
    """Build the config of the small model the command line trains.

    It learns copy and reverse in about 1,200 steps. longest is the maximum example
    length the model must handle, for evaluating on longer sequences than training.
    max_len covers it, and at least 64 positions.
    """
    longest = task.max_length if longest is None else max(longest, task.max_length)
    return TransformerConfig(
        src_vocab_size=task.vocab_size,
        tgt_vocab_size=task.vocab_size,
        d_model=64,
        num_heads=4,
        num_encoder_layers=2,
        num_decoder_layers=2,
        d_ff=256,
        dropout=0.0,
        max_len=max(
            64,
            task.max_source_length,
            task.max_target_length,
            task.source_length(longest),
            task.target_length(longest),
        ),
        pad_id=PAD,
        dtype=dtype,
    )


class Trainer:
    """A training run: model, optimizer, schedule, data streams and history.

    Build one with `Trainer(task, config, settings)` for a new run or
    `Trainer.from_checkpoint(path)` to continue one; then call `run()`.
    """

    def __init__(self, task, config, settings):
        self.task = task
        self.config = config
        self.settings = settings
        self.model = Transformer(config, seed=settings.seed)
        self.optimizer = Adam(self.model.parameters())
        self.schedule = NoamSchedule(
            config.d_model, settings.warmup_steps, settings.lr_factor
        )
        self.train_rng, _ = data_streams(settings.seed)
        self.heldout = heldout_set(task, settings.seed, settings.heldout_size)
        self.history = {
            "step": [],
            "loss": [],
            "lr": [],
            "eval_step": [],
            "eval_accuracy": [],
        }
        self.elapsed = 0.0
        self.step = 0
        self.stop_requested = False  # set from a signal handler to stop after this step

    # ---- state ---------------------------------------------------------------------

    def meta(self):
        return {
            "config": self.config.to_dict(),
            "task": self.task.settings(),
            "settings": dataclasses.asdict(self.settings),
            "step": self.step,
            "train_rng": self.train_rng.bit_generator.state,
            "dropout_rng": _rng_state(self.model.dropout_rng),
            "history": self.history,
            "elapsed_seconds": self.elapsed,
        }

    def save(self, path):
        save_checkpoint(path, self.model, self.optimizer, self.meta())

    @classmethod
    def from_checkpoint(cls, path, task_overrides=None):
        """Rebuild a run from a checkpoint so that it continues bit for bit.

        task_overrides replaces saved task settings, such as the path of a data file
        that moved (its SHA-256 must still match).
        """
        arrays, meta = load_checkpoint(path)
        try:
            task_settings = dict(meta["task"], **(task_overrides or {}))
            task = get_task(task_settings.pop("name"), **task_settings)
            config = TransformerConfig.from_dict(meta["config"])
            settings = TrainSettings(**meta["settings"])
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(
                f"checkpoint {path} has invalid settings ({error})"
            ) from None
        trainer = cls(task, config, settings)
        params, m, v, step = split_state(arrays)
        try:
            trainer.model.load_state_dict(params)
            _load_moments(trainer.optimizer, m, v)
        except ValueError as error:
            raise CheckpointError(
                f"checkpoint {path} cannot be loaded into its model: {error}"
            ) from None
        try:
            trainer.optimizer.step_count = step
            trainer.step = int(meta["step"])
            trainer.train_rng.bit_generator.state = meta["train_rng"]
            _set_rng_state(trainer.model.dropout_rng, meta["dropout_rng"])
            trainer.history = {
                key: list(meta["history"][key]) for key in trainer.history
            }
            trainer.elapsed = float(meta.get("elapsed_seconds", 0.0))
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(
                f"checkpoint {path} has a missing or invalid training state entry "
                f"({type(error).__name__}: {error})"
            ) from None
        return trainer

    # ---- running -------------------------------------------------------------------

    def evaluate_by_length(self, longest, per_length=200):
        """Exact-sequence accuracy for each example length from 1 to `longest`.

        Each length gets `per_length` fresh examples from a stream independent of
        training and of the held-out set, so lengths beyond training can be tested.
        Returns a dict length -> accuracy.
        """
        rng = numpy.random.default_rng(
            numpy.random.SeedSequence(self.settings.seed).spawn(3)[2]
        )
        accuracy = {}
        for length in range(1, longest + 1):
            inputs = self.task.inputs_of_length(rng, per_length, length)
            accuracy[length] = evaluate(self.model, self.task.make_batch(inputs))
        return accuracy

    def evaluate(self, size=None):
        """Exact-sequence accuracy on the first `size` held-out rows (all when None)."""
        batch = self.heldout if size is None else self.heldout.subset(slice(0, size))
        return evaluate(self.model, batch)

    def run(self, until_step=None, callback=None, checkpoint_path=None):
        """Train until step `until_step` (default settings.steps); return the history.

        callback(event, info) receives "step" after every update and "eval" after each
        evaluation. With checkpoint_path, saves every settings.save_every steps. Setting
        `stop_requested` (from a signal handler, say) ends the run after the current
        step, so parameters and optimizer state always stay consistent.
        """
        settings = self.settings
        until_step = settings.steps if until_step is None else until_step
        while self.step < until_step and not self.stop_requested:
            batch = self.task.sample_batch(self.train_rng, settings.batch_size)
            started = time.perf_counter()
            loss, lr, grad_norm = train_step(
                self.model,
                self.optimizer,
                self.schedule,
                batch,
                self.step + 1,
                settings.label_smoothing,
                settings.clip_norm,
            )
            seconds = time.perf_counter() - started
            self.elapsed += seconds
            self.step += 1
            self.history["step"].append(self.step)
            self.history["loss"].append(loss)
            self.history["lr"].append(lr)
            if callback:
                callback(
                    "step",
                    {
                        "step": self.step,
                        "loss": loss,
                        "lr": lr,
                        "grad_norm": grad_norm,
                        "tokens_per_second": batch.num_target_tokens()
                        / max(seconds, 1e-9),
                    },
                )
            if settings.eval_every and self.step % settings.eval_every == 0:
                accuracy = self.evaluate(settings.eval_size)
                self.history["eval_step"].append(self.step)
                self.history["eval_accuracy"].append(accuracy)
                if callback:
                    callback(
                        "eval",
                        {
                            "step": self.step,
                            "loss": loss,
                            "lr": lr,
                            "accuracy": accuracy,
                        },
                    )
            if (
                checkpoint_path
                and settings.save_every
                and self.step % settings.save_every == 0
            ):
                self.save(checkpoint_path)
        return self.history


def _rng_state(rng):
    state = getattr(getattr(rng, "bit_generator", None), "state", None)
    return state if isinstance(state, dict) else None


def _set_rng_state(rng, state):
    if state is not None and hasattr(rng, "bit_generator"):
        rng.bit_generator.state = state


def _load_moments(optimizer, m, v):
    xp = get_backend()
    for name in optimizer.params:
        if name not in m or name not in v:
            raise ValueError(f"the optimizer state lacks moments for {name}")
        optimizer.m[name][...] = xp.asarray(m[name])
        optimizer.v[name][...] = xp.asarray(v[name])


def numpy_params(model):
    """Return the model's parameters as NumPy arrays (a convenience for tests and tools)."""
    return {name: numpy.array(to_numpy(p)) for name, p in model.parameters().items()}
