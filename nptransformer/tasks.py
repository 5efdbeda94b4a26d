"""Toy sequence-to-sequence tasks with padded batches.

Each example is a sequence x of L symbols (ids 3 and up, L uniform in [1, max_length]):
src = x EOS, tgt_in = BOS y, tgt_out = y EOS, with y the task's answer. Batches are
right-padded with PAD to their longest row. Tasks: copy, reverse, sort and addition
here, and tab-separated pairs from a file in `nptransformer.data`.
"""

import re
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
    """A task that maps a random symbol sequence x to a target y = `answer(x)`.

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
        """Maximum length of a src row (x plus EOS)."""
        return self.source_length(self.max_length)

    @property
    def max_target_length(self):
        """Maximum length of a tgt_in or tgt_out row (the target plus BOS or EOS)."""
        return self.target_length(self.max_length)

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

    def inputs_of_length(self, rng, count, length):
        """Draw `count` symbol sequences of exactly `length` symbols (any length >= 1)."""
        high = NUM_SPECIAL + self.num_symbols
        return list(rng.integers(NUM_SPECIAL, high, size=(count, length)))

    def source_length(self, length):
        """Length of src (EOS included) for an example of length `length`."""
        return length + 1

    def target_length(self, length):
        """Length of tgt_in and tgt_out for an example of length `length`."""
        return length + 1

    def heldout_batch(self, seed, size):
        """Draw the held-out set: `size` examples from a stream independent of training.

        Short sequences can also appear in training (with 10 symbols there are only
        10 sequences of length 1); the overlap is not removed.
        """
        _, heldout_rng = data_streams(seed)
        return self.make_batch(self.sample_inputs(heldout_rng, size))

    def parse_source(self, text):
        """Turn user text such as "3 5 7" into source ids; ValueError if invalid."""
        low, high = NUM_SPECIAL, self.vocab_size - 1
        ids = []
        for item in text.split():
            try:
                value = int(item)
            except ValueError:
                raise ValueError(
                    f"symbol {item!r} is not an integer; pass ids from {low} to {high}"
                ) from None
            if not low <= value <= high:
                raise ValueError(
                    f"symbol {value} is outside this task's symbols {low}..{high}"
                )
            ids.append(value)
        if not ids:
            raise ValueError(
                f'no symbols given; pass ids from {low} to {high}, e.g. "3 5 7"'
            )
        return ids

    def example_length(self, ids):
        """Return the length of source ids (EOS excluded) in the unit of max_length."""
        return len(ids)

    def format_ids(self, ids):
        """Format decoded ids (up to EOS) for printing: space-separated integers."""
        return " ".join(str(token) for token in strip_special(ids))

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


class SortTask(Task):
    """y = x sorted in increasing order (repeated symbols kept)."""

    name = "sort"

    def answer(self, x):
        return numpy.sort(x)


class AdditionTask(Task):
    """x = the digits of a, a separator, the digits of b; y = the digits of a + b.

    Digits are written most significant first, as ids 3 (digit 0) to 12 (digit 9);
    the separator is id 13. Here max_length is the longest operand in digits, and
    each operand's digit count is uniform in [1, max_length] (a leading zero only for
    the number 0 itself). num_symbols must be 10: the ten digits.
    """

    name = "addition"
    SEPARATOR = NUM_SPECIAL + 10

    MAX_DIGITS = 18  # sums of two 18-digit numbers still fit in a 64-bit integer

    def __init__(self, num_symbols=10, max_length=3):
        if isinstance(max_length, int) and max_length > self.MAX_DIGITS:
            raise ValueError(
                f"the addition task supports operands of at most {self.MAX_DIGITS} "
                f"digits, got max_length {max_length}"
            )
        if num_symbols != 10:
            raise ValueError(
                "the addition task uses the 10 digits, so num_symbols must be 10, "
                f"got {num_symbols!r}"
            )
        super().__init__(num_symbols=10, max_length=max_length)

    @property
    def vocab_size(self):
        return NUM_SPECIAL + 11  # the digits and the separator

    def source_length(self, length):
        return 2 * length + 2  # two operands, the separator and EOS

    def target_length(self, length):
        return length + 2  # a possible carry digit, plus BOS or EOS

    @staticmethod
    def _numbers(rng, digits):
        """Draw one number per entry of `digits`, with exactly that many digits."""
        low = numpy.where(digits == 1, 0, 10 ** (digits - 1))
        return [int(rng.integers(lo, 10**d)) for lo, d in zip(low, digits)]

    def _encode(self, a, b):
        digits = [NUM_SPECIAL + int(c) for c in str(a)]
        digits.append(self.SEPARATOR)
        digits.extend(NUM_SPECIAL + int(c) for c in str(b))
        return numpy.array(digits, dtype=numpy.int64)

    def sample_inputs(self, rng, batch_size):
        digits = rng.integers(1, self.max_length + 1, size=(2, batch_size))
        first = self._numbers(rng, digits[0])
        second = self._numbers(rng, digits[1])
        return [self._encode(a, b) for a, b in zip(first, second)]

    def inputs_of_length(self, rng, count, length):
        if length > self.MAX_DIGITS:
            raise ValueError(
                f"the addition task supports operands of at most {self.MAX_DIGITS} "
                f"digits, got length {length}"
            )
        digits = numpy.full(count, length)
        first = self._numbers(rng, digits)
        second = self._numbers(rng, digits)
        return [self._encode(a, b) for a, b in zip(first, second)]

    def example_length(self, ids):
        """Return the digit count of the longer operand."""
        ids = list(ids)
        if self.SEPARATOR not in ids:
            return len(ids)
        separator = ids.index(self.SEPARATOR)
        return max(separator, len(ids) - separator - 1)

    def answer(self, x):
        separator = int(numpy.flatnonzero(x == self.SEPARATOR)[0])
        a = int("".join(str(d - NUM_SPECIAL) for d in x[:separator]))
        b = int("".join(str(d - NUM_SPECIAL) for d in x[separator + 1 :]))
        return numpy.array(
            [NUM_SPECIAL + int(c) for c in str(a + b)], dtype=numpy.int64
        )

    def parse_source(self, text):
        """Accept "12+345" (digits and one plus sign) or ids such as "4 5 13 6"."""
        compact = text.replace(" ", "")
        if re.fullmatch(r"[0-9]+\+[0-9]+", compact):
            a, b = compact.split("+")
            if max(len(a), len(b)) > self.MAX_DIGITS:
                raise ValueError(
                    f"operands of at most {self.MAX_DIGITS} digits are supported, "
                    f"got {text!r}"
                )
            return [int(token) for token in self._encode(int(a), int(b))]
        if not re.fullmatch(r"[0-9 ]+", text.strip()):
            raise ValueError(
                f'expected two numbers joined by "+", such as "12+345", got {text!r}'
            )
        ids = super().parse_source(text)
        separators = [i for i, token in enumerate(ids) if token == self.SEPARATOR]
        if len(separators) != 1 or separators[0] in (0, len(ids) - 1):
            raise ValueError(
                f'expected two numbers joined by "+", such as "12+345", got {text!r}'
            )
        return ids

    def format_ids(self, ids):
        """Format decoded digit ids as a number, such as "357".

        A stray BOS (which an undertrained model can emit) prints as "<bos>".
        """
        return "".join(
            "+"
            if token == self.SEPARATOR
            else "<bos>"
            if token == BOS
            else str(token - NUM_SPECIAL)
            for token in strip_special(ids)
        )


TASKS = {
    "copy": CopyTask,
    "reverse": ReverseTask,
    "sort": SortTask,
    "addition": AdditionTask,
}
DEFAULT_MAX_LENGTH = {"copy": 10, "reverse": 10, "sort": 10, "addition": 3}


def get_task(name, **settings):
    """Return a task by name, built with its settings.

    Symbol tasks take num_symbols and max_length; "data" takes the settings of
    `nptransformer.data.PairsTask`. Raises ValueError naming the known tasks.
    """
    if name == "data":
        from .data import PairsTask

        return PairsTask(**settings)
    if name not in TASKS:
        choices = ", ".join(sorted(TASKS))
        raise ValueError(
            f"unknown task {name!r}; choose one of: {choices}, or --data FILE"
        )
    settings.setdefault("max_length", DEFAULT_MAX_LENGTH[name])
    return TASKS[name](**settings)


def data_streams(seed):
    """Return independent Generators (training, held-out) derived from one seed."""
    train_seq, heldout_seq = numpy.random.SeedSequence(seed).spawn(2)
    return numpy.random.default_rng(train_seq), numpy.random.default_rng(heldout_seq)


def heldout_set(task, seed, size):
    """Return the task's held-out evaluation set (see `Task.heldout_batch`)."""
    return task.heldout_batch(seed, size)


def strip_special(ids):
    """Return the ids of one decoded row up to (not including) its first EOS or PAD."""
    out = []
    for token in ids:
        if token in (EOS, PAD):
            break
        out.append(int(token))
    return out
