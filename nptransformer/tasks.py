"""Toy sequence-to-sequence tasks with padded batches.

Each example is a sequence x of L symbols (ids 3 and up, L uniform in [1, max_length]):
src = x EOS, tgt_in = BOS y, tgt_out = y EOS, with y the task's answer. Batches are
right-padded with PAD to their longest row.
"""

from dataclasses import dataclass

import numpy

PAD, BOS, EOS = 0, 1, 2
NUM_SPECIAL = 3


@dataclass
class Batch:
    """One padded batch of NumPy int64 arrays: src (B, S), tgt_in (B, T), tgt_out (B, T)."""

    src: numpy.ndarray
    tgt_in: numpy.ndarray
    tgt_out: numpy.ndarray

    def __len__(self):
        return self.src.shape[0]

    def num_target_tokens(self):
        """Non-pad target tokens: the count behind tokens per second."""
        return int((self.tgt_out != PAD).sum())

    def subset(self, rows):
        """Return the rows `rows` (a slice or index array) as a new Batch."""
        return Batch(self.src[rows], self.tgt_in[rows], self.tgt_out[rows])


def pad_sequences(sequences, pad_id=PAD):
    """Right-pad a list of 1-D integer sequences into an int64 array (N, longest)."""
    longest = max(len(sequence) for sequence in sequences)
    out = numpy.full((len(sequences), longest), pad_id, dtype=numpy.int64)
    for row, sequence in enumerate(sequences):
        out[row, : len(sequence)] = sequence
    return out


class Task:
    """A task that maps a random symbol sequence x to an answer y = `answer(x)`.

    num_symbols: how many distinct symbols (ids 3 .. 3 + num_symbols - 1);
    max_length: the longest x, in symbols (BOS and EOS not counted).
    """

    name = "task"

    def __init__(self, num_symbols=10, max_length=10):
        if (
            isinstance(num_symbols, bool)
            or int(num_symbols) != num_symbols
            or num_symbols < 2
        ):
            raise ValueError(
                f"num_symbols must be an integer of at least 2, got {num_symbols!r}"
            )
        if (
            isinstance(max_length, bool)
            or int(max_length) != max_length
            or max_length < 1
        ):
            raise ValueError(
                f"max_length must be a positive integer, got {max_length!r}"
            )
        self.num_symbols = int(num_symbols)
        self.max_length = int(max_length)

    @property
    def vocab_size(self):
        """Source and target vocabulary size: the special ids plus the symbols."""
        return NUM_SPECIAL + self.num_symbols

    @property
    def max_source_length(self):
        """Longest src row (x plus EOS)."""
        return self.max_length + 1

    @property
    def max_target_length(self):
        """Longest tgt_in / tgt_out row (the answer plus BOS or EOS)."""
        return self.max_length + 1

    def answer(self, x):
        """Return the target symbols for source symbols x (1-D int array)."""
        raise NotImplementedError

    def sample_inputs(self, rng, batch_size):
        """Draw batch_size symbol sequences with lengths uniform in [1, max_length]."""
        lengths = rng.integers(1, self.max_length + 1, size=batch_size)
        symbols = rng.integers(
            NUM_SPECIAL,
            NUM_SPECIAL + self.num_symbols,
            size=(batch_size, self.max_length),
        )
        return [symbols[row, :length] for row, length in enumerate(lengths)]

    def make_batch(self, inputs):
        """Build a padded Batch from a list of symbol sequences."""
        answers = [self.answer(numpy.asarray(x)) for x in inputs]
        src = pad_sequences([numpy.append(x, EOS) for x in inputs])
        tgt_in = pad_sequences([numpy.insert(y, 0, BOS) for y in answers])
        tgt_out = pad_sequences([numpy.append(y, EOS) for y in answers])
        return Batch(src, tgt_in, tgt_out)

    def sample_batch(self, rng, batch_size):
        """Draw one training batch from the NumPy Generator rng."""
        return self.make_batch(self.sample_inputs(rng, batch_size))

    def settings(self):
        return {
            "name": self.name,
            "num_symbols": self.num_symbols,
            "max_length": self.max_length,
        }


class CopyTask(Task):
    """y = x."""

    name = "copy"

    def answer(self, x):
        return x.copy()


class ReverseTask(Task):
    """y = x reversed. The decoder must read the source backwards through cross-attention."""

    name = "reverse"

    def answer(self, x):
        return x[::-1].copy()


TASKS = {"copy": CopyTask, "reverse": ReverseTask}


def get_task(name, num_symbols=10, max_length=10):
    """Return a task instance by name; raises ValueError naming the known tasks."""
    if name not in TASKS:
        raise ValueError(
            f"unknown task {name!r}; choose one of: {', '.join(sorted(TASKS))}"
        )
    return TASKS[name](num_symbols=num_symbols, max_length=max_length)


def data_streams(seed):
    """Return independent Generators (training, held-out) derived from one seed."""
    train_seq, heldout_seq = numpy.random.SeedSequence(seed).spawn(2)
    return numpy.random.default_rng(train_seq), numpy.random.default_rng(heldout_seq)


def heldout_set(task, seed, size):
    """Draw the held-out evaluation set once, from a stream independent of training.

    Short sequences can also appear in training (with 10 symbols there are only 10
    sequences of length 1); the overlap is not removed.
    """
    _, heldout_rng = data_streams(seed)
    return task.make_batch(task.sample_inputs(heldout_rng, size))
