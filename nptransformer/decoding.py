"""Decoding without teacher forcing, and exact-sequence accuracy."""

import numpy

from .backend import get_backend, to_numpy
from .tasks import BOS, EOS, PAD


def greedy_decode(model, src, max_len):
    """Decode a batch greedily: at each step append the most likely next token.

    src: int (B, S). Runs the encoder once, then the decoder on the growing prefix
    (recomputing earlier positions each step). Each row stops at its own EOS; the
    loop ends when every row has stopped or after max_len tokens.
    Returns a NumPy int64 array (B, <= max_len) of generated ids, BOS excluded, EOS
    included where produced, PAD after a row's EOS.
    """
    if int(max_len) != max_len or max_len < 1:
        raise ValueError(f"max_len must be a positive integer, got {max_len!r}")
    max_len = min(int(max_len), model.config.max_len)
    xp = get_backend()
    src, _ = model.check_inputs(src)
    src_mask, _ = model.make_masks(src, None)
    memory, _ = model.encode(src, src_mask, training=False)

    B = src.shape[0]
    tokens = xp.full((B, 1), BOS, dtype=xp.int64)
    finished = xp.zeros(B, dtype=bool)
    for _ in range(max_len):
        _, tgt_mask = model.make_masks(src, tokens)
        logits, _ = model.decode(tokens, memory, src_mask, tgt_mask, training=False)
        next_token = logits[:, -1].argmax(axis=-1)
        next_token = xp.where(finished, PAD, next_token)
        tokens = xp.concatenate([tokens, next_token[:, None]], axis=1)
        finished = finished | (next_token == EOS)
        if bool(finished.all()):
            break
    return numpy.asarray(to_numpy(tokens[:, 1:]), dtype=numpy.int64)


def strip_special(ids):
    """Return the ids of one decoded row up to (not including) its first EOS or PAD."""
    out = []
    for token in ids:
        if token in (EOS, PAD):
            break
        out.append(int(token))
    return out


def exact_match(predicted, tgt_out):
    """Return a boolean (B,) array: True where every token up to and including EOS matches.

    predicted: decoded ids (B, P); tgt_out: reference ids (B, T), EOS-terminated and
    PAD-padded. Extra tokens after a correct EOS do not count (decoding stops there).
    """
    predicted = numpy.asarray(predicted)
    tgt_out = numpy.asarray(tgt_out)
    B, T = tgt_out.shape
    P = predicted.shape[1]
    width = max(P, T)
    padded_prediction = numpy.full((B, width), PAD, dtype=numpy.int64)
    padded_prediction[:, :P] = predicted
    reference_mask = tgt_out != PAD
    compare = padded_prediction[:, :T] == tgt_out
    return numpy.all(compare | ~reference_mask, axis=1)
