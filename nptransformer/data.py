"""Train on your own data: a file of tab-separated source and target lines.

Each non-empty line is `source<TAB>target`. Text becomes tokens one character at a
time (tokens="chars", the default) or split on whitespace (tokens="words"). The
vocabulary is PAD, BOS and EOS followed by every token of the file in sorted order,
shared by source and target, and is saved in the checkpoint so decoding needs
only the checkpoint. A seeded shuffle holds out a fraction of the pairs for
evaluation; training batches are drawn from the rest.
"""

import hashlib
import os

import numpy

from .tasks import (
    BOS,
    NUM_SPECIAL,
    Batch,
    Task,
    data_streams,
    pad_sequences,
    strip_special,
)

TOKENIZATIONS = ("chars", "words")


def tokenize(text, tokens):
    """Split text into tokens: characters, or whitespace-separated words."""
    return list(text) if tokens == "chars" else text.split()


def read_pairs(path, tokens="chars"):
    """Read `source<TAB>target` lines; return a list of (source tokens, target tokens).

    Raises ValueError naming the line number for a line without a tab, with more
    than one tab, or with an empty side, and for an empty line; OSError if the file
    cannot be read.
    """
    if tokens not in TOKENIZATIONS:
        raise ValueError(f"tokens must be one of {TOKENIZATIONS}, got {tokens!r}")
    pairs = []
    for number, line in enumerate(_read_lines(path), start=1):
        line = line.rstrip("\r")  # Windows line endings
        if not line.strip():
            raise ValueError(
                f"{path} line {number} is empty; remove it or write source<TAB>target"
            )
        parts = line.split("\t")
        if len(parts) != 2:
            raise ValueError(
                f"{path} line {number} has {len(parts) - 1} tabs; expected exactly "
                "one, between source and target"
            )
        source, target = (tokenize(part, tokens) for part in parts)
        if not source or not target:
            side = "source" if not source else "target"
            raise ValueError(f"{path} line {number} has an empty {side}")
        pairs.append((source, target))
    if len(pairs) < 2:
        raise ValueError(
            f"{path} has {len(pairs)} usable pair(s); at least 2 are needed "
            "(one to train on and one to hold out)"
        )
    return pairs


def _read_lines(path):
    """Return the file's lines without their newline characters.

    The text is decoded as UTF-8; "utf-8-sig" drops a byte-order mark, which would
    otherwise become a token. Invalid bytes raise ValueError naming the line.
    """
    with open(path, "rb") as file:
        data = file.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ValueError(
            f"{path} line {line} is not valid UTF-8 (byte {data[error.start]:#04x}); "
            "save the file as UTF-8 text"
        ) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return lines


def file_digest(path):
    """SHA-256 of the file, so a resumed run can detect a changed data file."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class PairsTask(Task):
    """A task whose examples are the pairs of a tab-separated file.

    Arguments:
        path: the file.
        tokens: "chars" or "words".
        heldout_fraction: share of pairs held out (at least one pair).
        split_seed: seed of the shuffle that splits the pairs.
        vocabulary, digest: filled in from the file when omitted, and checked
            against it when given (as when a checkpoint is loaded).
        load_pairs: False skips reading the file, which decoding does not need.
        max_length: the maximum source or target length in tokens, used only without the
            file (read from the file otherwise).
    """

    name = "data"

    def __init__(
        self,
        path,
        tokens="chars",
        heldout_fraction=0.1,
        split_seed=0,
        vocabulary=None,
        digest=None,
        load_pairs=True,
        max_length=None,
    ):
        if not 0.0 < heldout_fraction < 1.0:
            raise ValueError(
                f"heldout_fraction must be in (0, 1), got {heldout_fraction!r}"
            )
        if tokens not in TOKENIZATIONS:
            raise ValueError(f"tokens must be one of {TOKENIZATIONS}, got {tokens!r}")
        self.path = os.fspath(path)
        self.tokens = tokens
        self.heldout_fraction = float(heldout_fraction)
        self.split_seed = int(split_seed)
        if not load_pairs:
            if vocabulary is None:
                raise ValueError(
                    "a data task without its file needs the saved vocabulary"
                )
            self.vocabulary = list(vocabulary)
            self.token_ids = {t: NUM_SPECIAL + i for i, t in enumerate(self.vocabulary)}
            self.digest = digest
            self.train_pairs, self.heldout_pairs = [], []
            self.num_symbols = len(self.vocabulary)
            self.max_length = int(max_length or 0)
            return
        pairs = read_pairs(self.path, tokens)
        current_digest = file_digest(self.path)
        if digest is not None and digest != current_digest:
            raise ValueError(
                f"{self.path} changed since the run was saved (its SHA-256 differs); "
                "restore the original file to resume or decode"
            )
        self.digest = current_digest
        file_vocabulary = sorted({t for pair in pairs for side in pair for t in side})
        if vocabulary is not None:
            file_vocabulary = list(vocabulary)
        self.vocabulary = file_vocabulary
        self.token_ids = {
            token: NUM_SPECIAL + i for i, token in enumerate(self.vocabulary)
        }

        order = numpy.random.default_rng(self.split_seed).permutation(len(pairs))
        heldout_count = max(1, int(round(self.heldout_fraction * len(pairs))))
        heldout_count = min(heldout_count, len(pairs) - 1)
        encoded = [(self._encode(s), self._encode(t)) for s, t in pairs]
        self.heldout_pairs = [encoded[i] for i in order[:heldout_count]]
        self.train_pairs = [encoded[i] for i in order[heldout_count:]]
        self.num_symbols = len(self.vocabulary)
        self.max_length = max(max(len(s), len(t)) for s, t in encoded)

    def _encode(self, tokens):
        missing = [t for t in tokens if t not in self.token_ids]
        if missing:
            raise ValueError(
                f"token {missing[0]!r} from {self.path} is not in the saved vocabulary; "
                "the data file differs from the one the run was trained on"
            )
        return numpy.array([self.token_ids[t] for t in tokens], dtype=numpy.int64)

    def _require_pairs(self):
        if not self.train_pairs:
            raise ValueError(
                f"this data task was loaded without {self.path}; "
                "build it with load_pairs=True to train or evaluate"
            )

    @property
    def max_source_length(self):
        self._require_pairs()
        return max(len(s) for s, _ in self.train_pairs + self.heldout_pairs) + 1

    @property
    def max_target_length(self):
        self._require_pairs()
        return max(len(t) for _, t in self.train_pairs + self.heldout_pairs) + 1

    def _batch(self, pairs):
        src = pad_sequences([numpy.append(s, 2) for s, _ in pairs])
        tgt_in = pad_sequences([numpy.insert(t, 0, 1) for _, t in pairs])
        tgt_out = pad_sequences([numpy.append(t, 2) for _, t in pairs])
        return Batch(src, tgt_in, tgt_out)

    def sample_batch(self, rng, batch_size):
        rows = rng.integers(0, len(self.train_pairs), size=batch_size)
        return self._batch([self.train_pairs[row] for row in rows])

    def heldout_batch(self, seed, size):
        """Return the first `size` held-out pairs (split_seed decides the split)."""
        return self._batch(self.heldout_pairs[:size])

    def inputs_of_length(self, rng, count, length):
        raise ValueError(
            "length generalisation needs a generated task, not a data file"
        )

    def parse_source(self, text):
        """Tokenize user text; ValueError naming any token the vocabulary lacks."""
        tokens = tokenize(text, self.tokens)
        if not tokens:
            raise ValueError("no input given; pass the text to translate")
        for position, token in enumerate(tokens):
            if token not in self.token_ids:
                what = "character" if self.tokens == "chars" else "word"
                raise ValueError(
                    f"{what} {token!r} at position {position} is not in the vocabulary "
                    f"of {self.path}; use only {what}s that occur in the training file"
                )
        return [int(i) for i in self._encode(tokens)]

    def format_ids(self, ids):
        """Turn decoded ids back into text (characters joined, or words with spaces).

        A stray BOS (which an undertrained model can emit) prints as "<bos>", and an
        id outside the vocabulary as "<id N>".
        """
        tokens = []
        for i in strip_special(ids):
            if NUM_SPECIAL <= i < self.vocab_size:
                tokens.append(self.vocabulary[i - NUM_SPECIAL])
            else:
                tokens.append("<bos>" if i == BOS else f"<id {i}>")
        return "".join(tokens) if self.tokens == "chars" else " ".join(tokens)

    def answer(self, x):
        raise ValueError("a data file task has no rule to compute targets from sources")

    def settings(self):
        return {
            "name": self.name,
            "path": self.path,
            "tokens": self.tokens,
            "heldout_fraction": self.heldout_fraction,
            "split_seed": self.split_seed,
            "vocabulary": self.vocabulary,
            "digest": self.digest,
            "max_length": self.max_length,
        }


__all__ = ["PairsTask", "read_pairs", "tokenize", "data_streams"]
