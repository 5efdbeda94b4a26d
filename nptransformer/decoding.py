"""Greedy decoding, beam search and exact-sequence accuracy."""

import math

import numpy

from .backend import get_backend, to_numpy
from .incremental import start_decoding
from .tasks import BOS, EOS, PAD, strip_special  # noqa: F401 (re-exported)


def greedy_decode(model, src, max_len, use_cache=True):
    """Decode a batch greedily: at each step append the most likely next token.

    src: int (B, S). Runs the encoder once. With use_cache=True (the default) each
    step runs the decoder on the newest position only, reusing the keys and values
    of earlier positions (`nptransformer.incremental.DecoderState`). With
    use_cache=False each step reruns the decoder on the whole prefix. Both give the
    same tokens up to round-off in the logits. PAD and BOS are never chosen, since no
    target contains them. Each row stops at its own EOS. The loop
    ends when every row has stopped or after max_len tokens (capped at the model's
    max_len).
    Returns a NumPy int64 array (B, <= max_len) of generated ids, BOS excluded, EOS
    included where produced, PAD after a row's EOS.
    """
    max_len = _check_max_len(model, max_len)
    xp = get_backend()
    if use_cache:
        state = start_decoding(model, src)

        def next_logits(tokens):
            return state.step(tokens[:, -1])

    else:
        src, _ = model.check_inputs(src)
        src_mask, _ = model.make_masks(src, None)
        memory, _ = model.encode(src, src_mask, training=False)

        def next_logits(tokens):
            _, tgt_mask = model.make_masks(src, tokens)
            logits, _ = model.decode(tokens, memory, src_mask, tgt_mask)
            return logits[:, -1]

    B = src.shape[0]
    tokens = xp.full((B, 1), BOS, dtype=xp.int64)
    finished = xp.zeros(B, dtype=bool)
    allowed = xp.ones(model.config.tgt_vocab_size, dtype=bool)
    allowed[[PAD, BOS]] = False  # never outputs: no target contains them
    for _ in range(max_len):
        logits = xp.where(allowed, next_logits(tokens), -xp.inf)  # (B, V)
        next_token = logits.argmax(axis=-1)  # (B,)
        next_token = xp.where(finished, PAD, next_token)
        tokens = xp.concatenate([tokens, next_token[:, None]], axis=1)
        finished = finished | (next_token == EOS)
        if bool(finished.all()):
            break
    return numpy.asarray(to_numpy(tokens[:, 1:]), dtype=numpy.int64)


def beam_search(
    model,
    src,
    max_len,
    beam_size=4,
    alpha=0.6,
    return_scores=False,
    early_stopping=True,
):
    """Decode a batch with beam search and the length penalty of Wu et al. (2016).

    src: int (B, S). Keeps beam_size hypotheses per source row, for all rows at once
    (B * beam_size decoder rows with cached keys and values). A hypothesis Y, the
    generated tokens with BOS excluded and EOS included, scores log P(Y) / lp(Y) with
    lp(Y) = ((5 + |Y|) / 6) ** alpha, so alpha = 0 ranks by log P(Y) alone. The
    defaults beam_size=4 and alpha=0.6 are the ones Vaswani et al. (2017) used for
    translation. A hypothesis ends at EOS. One still open after max_len tokens (capped
    at the model's max_len) is scored without EOS. Each row returns its best-scoring
    hypothesis. With early_stopping=True a row stops as soon as no open hypothesis can
    beat its best finished one (see Notes). With early_stopping=False it runs until
    every hypothesis has ended or max_len is reached. Both return the same hypotheses.
    PAD and BOS are never generated: P is the model's distribution renormalised over
    the other tokens, since no target contains them.

    Returns a NumPy int64 array (B, <= max_len) in greedy_decode's format (BOS
    excluded, EOS included where produced, PAD after), and with return_scores=True
    also the NumPy float64 scores (B,).

    Notes
    -----
    Each step extends every open hypothesis by every token and keeps the beam_size
    best extensions per row, ranked by log P (they all have the same length, so this
    is also their ranking by score). Extensions that end in EOS leave the beam as
    finished hypotheses, and the others stay open. With beam_size=1 this picks the
    argmax token at every step, the same tokens as greedy_decode unless round-off in
    the log-softmax makes two tokens tie.

    Early-stopping bound: take an open hypothesis of length n with log-probability
    L <= 0. Every later token multiplies P by at most 1, so any completion Y of it has
    log P(Y) <= L and a length |Y| in [n + 1, max_len]. Dividing by lp(Y) > 0 keeps
    the inequality: score(Y) <= L / lp(Y). Because L <= 0, a larger lp gives a
    larger (less negative) L / lp, so the bound uses the largest lp reachable,
    max(lp(n + 1), lp(max_len)), lp being monotone in length. (For alpha >= 0 that is
    lp(max_len).) A row stops when its best finished score is at least this bound for
    every open hypothesis. A later hypothesis replaces the best only with a strictly
    higher score, so it could not change the result.
    """
    max_len = _check_max_len(model, max_len)
    if isinstance(beam_size, bool) or int(beam_size) != beam_size or beam_size < 1:
        raise ValueError(f"beam_size must be a positive integer, got {beam_size!r}")
    if isinstance(alpha, bool) or not math.isfinite(alpha):
        raise ValueError(f"alpha must be a finite number, got {alpha!r}")
    state = start_decoding(model, src)
    tokens, scores = _beam_search(
        state, max_len, int(beam_size), float(alpha), early_stopping
    )
    if return_scores:
        return tokens, scores
    return tokens


def length_penalty(length, alpha):
    """Return lp = ((5 + length) / 6) ** alpha, the length penalty of Wu et al. (2016).

    Source: Wu et al., "Google's Neural Machine Translation System: Bridging the Gap
    between Human and Machine Translation" (2016).
    """
    return ((5.0 + length) / 6.0) ** alpha


def _beam_search(state, max_len, beam_size, alpha, early_stopping):
    """Run beam search on a fresh decoder state and return tokens (B, W), scores (B,).

    state: an object with `num_rows` (B), `step(tokens (N,)) -> logits (N, V)` and
    `reorder(rows)`, such as `DecoderState`, with no positions fed yet. The search
    bookkeeping is NumPy on the host. Only the token ids and row indices passed to
    the state go to the active backend.
    """
    xp = get_backend()
    B, K = state.num_rows, beam_size
    rows = numpy.arange(B)

    # 1. copy each source row into K beams: decoder row b * K + k is beam k of row b.
    #    Only beam 0 starts open, so the first step does not pick one token K times.
    state.reorder(xp.asarray(numpy.repeat(rows, K)))  # (B * K) rows
    log_prob = numpy.zeros((B, K))  # log P of each hypothesis
    is_open = numpy.zeros((B, K), dtype=bool)
    is_open[:, 0] = True
    history = numpy.zeros((B, K, 0), dtype=numpy.int64)  # (B, K, length)
    best_tokens = numpy.full((B, max_len), PAD, dtype=numpy.int64)
    best_length = numpy.zeros(B, dtype=numpy.int64)
    best_score = numpy.full(B, -numpy.inf)
    row_done = numpy.zeros(B, dtype=bool)
    next_input = numpy.full(B * K, BOS, dtype=numpy.int64)

    for length in range(1, max_len + 1):
        # 2. next-token log-probabilities of every beam: (B, K, V)
        logits = to_numpy(state.step(xp.asarray(next_input)))
        V = logits.shape[-1]
        # PAD and BOS are never outputs (no target has them): the distribution is
        # renormalised over the other tokens.
        logits = logits.astype(numpy.float64)
        logits[:, [PAD, BOS]] = -numpy.inf
        log_probs = _log_softmax(logits).reshape(B, K, V)

        # 3. extend every open hypothesis by every token and keep the K best per row.
        #    candidates (B, K * V): entry k * V + v is beam k followed by token v.
        candidates = numpy.where(
            is_open[:, :, None], log_prob[:, :, None] + log_probs, -numpy.inf
        ).reshape(B, K * V)
        chosen = numpy.argsort(-candidates, axis=1, kind="stable")[:, :K]  # (B, K)
        parent, token = chosen // V, chosen % V  # (B, K) each
        log_prob = numpy.take_along_axis(candidates, chosen, axis=1)
        extends_open = numpy.take_along_axis(is_open, parent, axis=1)
        extends_open &= ~row_done[:, None]
        history = numpy.take_along_axis(history, parent[:, :, None], axis=1)
        history = numpy.concatenate([history, token[:, :, None]], axis=2)

        # 4. hypotheses ending in EOS are finished, and at max_len all of them are.
        #    Each row keeps its best, and a tie keeps the earlier one.
        if length == max_len:
            ended = extends_open
        else:
            ended = extends_open & (token == EOS)
        score = numpy.where(ended, log_prob / length_penalty(length, alpha), -numpy.inf)
        best_beam = score.argmax(axis=1)  # (B,)
        row_best = score[rows, best_beam]
        improved = row_best > best_score
        best_score[improved] = row_best[improved]
        best_length[improved] = length
        best_tokens[improved, :length] = history[improved, best_beam[improved]]
        is_open = extends_open & ~ended

        # 5. a row is done when nothing is open or, with early stopping, when nothing
        #    open can beat its best finished score (the bound is in beam_search's Notes).
        row_done |= ~is_open.any(axis=1)
        if early_stopping and length < max_len:
            largest_penalty = max(
                length_penalty(length + 1, alpha), length_penalty(max_len, alpha)
            )
            open_log_prob = numpy.where(is_open, log_prob, -numpy.inf).max(axis=1)
            row_done |= open_log_prob / largest_penalty <= best_score
        is_open &= ~row_done[:, None]
        if row_done.all():
            break

        # 6. move each beam's cache to its new slot. Closed beams are fed PAD.
        state.reorder(xp.asarray((rows[:, None] * K + parent).reshape(-1)))
        next_input = numpy.where(is_open, token, PAD).reshape(-1)  # (B * K,)

    width = int(best_length.max())
    return best_tokens[:, :width], best_score


def _log_softmax(logits):
    """log softmax over the last axis, shifted by the row maximum for stability."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - numpy.log(numpy.exp(shifted).sum(axis=-1, keepdims=True))


def _check_max_len(model, max_len):
    """Validate max_len and cap it at the model's max_len (positions 0..max_len-1)."""
    if isinstance(max_len, bool) or int(max_len) != max_len or max_len < 1:
        raise ValueError(f"max_len must be a positive integer, got {max_len!r}")
    return min(int(max_len), model.config.max_len)


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
