"""Cached greedy decoding and beam search against full-prefix recomputation.

Every model here is float64, so the cached and recomputed logits agree to round-off,
about 1e-15 in practice. The checks allow 1e-10.
"""

import itertools
import math

import numpy
import pytest

from nptransformer import (
    Adam,
    NoamSchedule,
    Transformer,
    TransformerConfig,
    set_backend,
)
from nptransformer.decoding import (
    _beam_search,
    beam_search,
    greedy_decode,
    length_penalty,
)
from nptransformer.incremental import start_decoding
from nptransformer.tasks import BOS, EOS, PAD, get_task
from nptransformer.train import train_step
from strict_backend import strict_device

LOGIT_TOLERANCE = 1e-10

VARIANTS = {
    "post-LN": {},
    "pre-LN": {"norm_first": True},
    "tied": {"tie_embeddings": True},
}

# A padded source batch: rows of 5, 2 and 1 symbols plus EOS.
SOURCE = numpy.array(
    [
        [8, 5, 10, 3, 5, 2],
        [7, 6, 2, PAD, PAD, PAD],
        [4, 2, PAD, PAD, PAD, PAD],
    ]
)
MAX_LEN = 8


def make_config(variant):
    return TransformerConfig(
        src_vocab_size=11,
        tgt_vocab_size=11,
        d_model=32,
        num_heads=4,
        num_encoder_layers=2,
        num_decoder_layers=2,
        d_ff=64,
        dropout=0.1,
        max_len=16,
        dtype="float64",
        **VARIANTS[variant],
    )


def train_model(variant, steps=40):
    """Train on reverse for a few dozen steps, enough for varied argmaxes and lengths."""
    task = get_task("reverse", num_symbols=8, max_length=6)
    model = Transformer(make_config(variant), seed=0)
    optimizer = Adam(model.parameters())
    schedule = NoamSchedule(32, warmup_steps=10, factor=0.5)
    rng = numpy.random.default_rng(0)
    for step in range(1, steps + 1):
        train_step(model, optimizer, schedule, task.sample_batch(rng, 32), step)
    return model


@pytest.fixture(scope="module")
def trained_models():
    return {variant: train_model(variant) for variant in VARIANTS}


def get_model(kind, variant, trained_models):
    if kind == "trained":
        return trained_models[variant]
    return Transformer(make_config(variant), seed=7)


def full_prefix_logits(model, src, tgt_in):
    """Logits (B, T, V): step t reruns the whole model on tgt_in[:, : t + 1]."""
    steps = [
        model.forward(src, tgt_in[:, : t + 1])[:, -1] for t in range(tgt_in.shape[1])
    ]
    return numpy.stack(steps, axis=1)


def assert_pad_after_eos(tokens):
    for row in tokens:
        eos_positions = numpy.flatnonzero(row == EOS)
        if eos_positions.size:
            after = row[eos_positions[0] + 1 :]
            assert (after == PAD).all(), f"row {row} has tokens after its EOS"


@pytest.mark.parametrize("kind", ["random", "trained"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_cached_greedy_matches_full_prefix(kind, variant, trained_models):
    model = get_model(kind, variant, trained_models)

    cached = greedy_decode(model, SOURCE, MAX_LEN)
    recomputed = greedy_decode(model, SOURCE, MAX_LEN, use_cache=False)

    numpy.testing.assert_array_equal(cached, recomputed)
    assert cached.dtype == numpy.int64
    # A decode that repeats one token proves little, so demand three distinct ids.
    assert len(numpy.unique(cached)) >= 3, f"trivial decode {cached}"


@pytest.mark.parametrize("kind", ["random", "trained"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_cached_logits_match_full_prefix(kind, variant, trained_models):
    model = get_model(kind, variant, trained_models)
    decoded = greedy_decode(model, SOURCE, MAX_LEN, use_cache=False)
    # Teacher-force the decoded tokens (PAD after EOS included) through both paths.
    tgt_in = numpy.concatenate(
        [numpy.full((len(SOURCE), 1), BOS), decoded[:, :-1]], axis=1
    )
    expected = full_prefix_logits(model, SOURCE, tgt_in)

    state = start_decoding(model, SOURCE)
    for t in range(tgt_in.shape[1]):
        logits = state.step(tgt_in[:, t])
        error = numpy.abs(logits - expected[:, t]).max()
        assert error <= LOGIT_TOLERANCE, f"step {t}: max |cached - full| {error:.2e}"


def test_greedy_rows_stop_at_own_eos(trained_models):
    model = trained_models["pre-LN"]

    for use_cache in (True, False):
        tokens = greedy_decode(model, SOURCE, MAX_LEN, use_cache=use_cache)
        assert_pad_after_eos(tokens)
        eos_columns = [numpy.flatnonzero(row == EOS)[0] for row in tokens]
        # The rows end at different steps, and the output is as wide as the longest.
        assert len(set(eos_columns)) >= 2, f"every row ends at the same step: {tokens}"
        assert tokens.shape[1] == max(eos_columns) + 1


def test_state_reorder_follows_rows():
    model = Transformer(make_config("pre-LN"), seed=7)
    rows = numpy.array([2, 0, 0])
    prefix = numpy.array([[BOS, 5, 6], [BOS, 7, 8], [BOS, 9, 3]])

    state = start_decoding(model, SOURCE)
    state.step(prefix[:, 0])
    state.step(prefix[:, 1])
    state.reorder(rows)
    reordered = state.step(prefix[rows, 2])

    fresh = start_decoding(model, SOURCE[rows])
    fresh.step(prefix[rows, 0])
    fresh.step(prefix[rows, 1])
    expected = fresh.step(prefix[rows, 2])
    numpy.testing.assert_allclose(reordered, expected, rtol=0, atol=LOGIT_TOLERANCE)


def test_state_rejects_position_past_max_len():
    model = Transformer(make_config("post-LN"), seed=7)
    state = start_decoding(model, SOURCE)
    bos = numpy.full(len(SOURCE), BOS)
    for _ in range(model.config.max_len):
        state.step(bos)
    with pytest.raises(ValueError, match="max_len"):
        state.step(bos)


def test_state_rejects_bad_tokens():
    model = Transformer(make_config("post-LN"), seed=7)
    state = start_decoding(model, SOURCE)
    with pytest.raises(ValueError, match="shape"):
        state.step(numpy.array([BOS, BOS]))
    with pytest.raises(ValueError, match="outside the target vocabulary"):
        state.step(numpy.array([BOS, BOS, 11]))
    with pytest.raises(TypeError, match="integer"):
        state.step(numpy.array([1.0, 1.0, 1.0]))


# ---- beam search ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["random", "trained"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_beam_size_one_equals_greedy(kind, variant, trained_models):
    model = get_model(kind, variant, trained_models)

    greedy = greedy_decode(model, SOURCE, MAX_LEN)
    beam = beam_search(model, SOURCE, MAX_LEN, beam_size=1)

    numpy.testing.assert_array_equal(beam, greedy)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_beam_early_stopping_matches_full_run(variant, alpha, trained_models):
    model = trained_models[variant]

    early, early_scores = beam_search(
        model, SOURCE, MAX_LEN, beam_size=3, alpha=alpha, return_scores=True
    )
    full, full_scores = beam_search(
        model,
        SOURCE,
        MAX_LEN,
        beam_size=3,
        alpha=alpha,
        return_scores=True,
        early_stopping=False,
    )

    numpy.testing.assert_array_equal(early, full)
    numpy.testing.assert_array_equal(early_scores, full_scores)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_beam_output_format(variant, trained_models):
    model = trained_models[variant]

    tokens, scores = beam_search(model, SOURCE, MAX_LEN, return_scores=True)

    assert tokens.dtype == numpy.int64
    assert tokens.shape[0] == len(SOURCE)
    assert tokens.shape[1] <= MAX_LEN
    assert not (tokens == BOS).any()
    assert_pad_after_eos(tokens)
    assert scores.shape == (len(SOURCE),)
    assert (scores <= 0).all(), f"scores {scores} must be <= 0: log P / lp, lp > 0"


def test_beam_rejects_bad_settings():
    model = Transformer(make_config("post-LN"), seed=7)
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(model, SOURCE, MAX_LEN, beam_size=0)
    with pytest.raises(ValueError, match="alpha"):
        beam_search(model, SOURCE, MAX_LEN, alpha=float("nan"))
    with pytest.raises(ValueError, match="max_len"):
        beam_search(model, SOURCE, 0)


def test_decoding_on_device_stand_in():
    # The stand-in rejects any NumPy array on the compute path, as CuPy does.
    host_model = Transformer(make_config("pre-LN"), seed=7)
    host_greedy = greedy_decode(host_model, SOURCE, MAX_LEN)
    host_beam, host_scores = beam_search(
        host_model, SOURCE, MAX_LEN, return_scores=True
    )

    set_backend(strict_device)
    try:
        device_model = Transformer(make_config("pre-LN"), seed=7)
        device_greedy = greedy_decode(device_model, SOURCE, MAX_LEN)
        device_beam, device_scores = beam_search(
            device_model, SOURCE, MAX_LEN, return_scores=True
        )
    finally:
        set_backend("numpy")

    numpy.testing.assert_array_equal(device_greedy, host_greedy)
    numpy.testing.assert_array_equal(device_beam, host_beam)
    numpy.testing.assert_allclose(device_scores, host_scores, rtol=1e-12)


# ---- beam search on a scripted next-token distribution -------------------------------

VOCAB_SIZE = 5  # PAD, BOS, EOS and the symbols 3 and 4
DEFAULT_NEXT = {EOS: 0.5, 3: 0.25, 4: 0.25}

# Row 0: EOS is the most likely first token, but "3 4 EOS" has the higher
# length-normalised score once alpha is large enough (1.0 here, not 0.6).
# Row 1: "4 EOS" wins under every setting.
SCRIPTS = [
    {
        (): {EOS: 0.4, 3: 0.35, 4: 0.25},
        (3,): {4: 0.95, EOS: 0.03, 3: 0.02},
        (3, 4): {EOS: 0.99, 3: 0.005, 4: 0.005},
    },
    {
        (): {4: 0.8, EOS: 0.1, 3: 0.1},
        (4,): {EOS: 0.9, 3: 0.05, 4: 0.05},
    },
]


class ScriptedState:
    """A stand-in for DecoderState whose next-token distribution is a lookup table.

    scripts[b] maps the tokens generated so far in source row b (a tuple, BOS
    excluded) to {token: probability}, and prefixes not listed use DEFAULT_NEXT.
    Tokens missing from a distribution get the logit -1e9, so probability 0 in practice.
    """

    def __init__(self, scripts):
        self.scripts = scripts
        self.source_row = list(range(len(scripts)))
        self.prefixes = [() for _ in scripts]
        self.steps = 0

    @property
    def num_rows(self):
        return len(self.prefixes)

    def step(self, tokens):
        self.steps += 1
        logits = numpy.full((self.num_rows, VOCAB_SIZE), -1e9)
        for row, token in enumerate(tokens):
            self.prefixes[row] = self.prefixes[row] + (int(token),)
            generated = self.prefixes[row][1:]
            script = self.scripts[self.source_row[row]]
            for next_token, probability in script.get(generated, DEFAULT_NEXT).items():
                logits[row, next_token] = math.log(probability)
        return logits

    def reorder(self, rows):
        self.source_row = [self.source_row[row] for row in rows]
        self.prefixes = [self.prefixes[row] for row in rows]


def scripted_log_prob(script, sequence):
    """log P(sequence) under one row's script; -inf if a token has no probability."""
    total = 0.0
    for position, token in enumerate(sequence):
        next_distribution = script.get(tuple(sequence[:position]), DEFAULT_NEXT)
        if token not in next_distribution:
            return -math.inf
        total += math.log(next_distribution[token])
    return total


def best_by_enumeration(script, max_len, alpha):
    """Score every EOS-terminated sequence over {3, 4} up to max_len; return the best."""
    best, best_score = None, -math.inf
    for length in range(1, max_len + 1):
        for body in itertools.product((3, 4), repeat=length - 1):
            sequence = (*body, EOS)
            score = scripted_log_prob(script, sequence) / length_penalty(length, alpha)
            if score > best_score:
                best, best_score = sequence, score
    return best, best_score


def run_scripted(beam_size, alpha, early_stopping=True, max_len=6, scripts=SCRIPTS):
    state = ScriptedState(scripts)
    tokens, scores = _beam_search(state, max_len, beam_size, alpha, early_stopping)
    return tokens, scores, state.steps


def test_scripted_enumeration_agrees_with_script():
    # Guards the hand-made script: the true optimum of row 0 under alpha = 1.0.
    best, _ = best_by_enumeration(SCRIPTS[0], max_len=6, alpha=1.0)
    assert best == (3, 4, EOS)


def test_beam_prefers_longer_hypothesis_under_length_penalty():
    tokens, scores, _ = run_scripted(beam_size=2, alpha=1.0)

    numpy.testing.assert_array_equal(tokens, [[3, 4, EOS], [4, EOS, PAD]])
    expected_row0 = math.log(0.35 * 0.95 * 0.99) / length_penalty(3, 1.0)
    expected_row1 = math.log(0.8 * 0.9) / length_penalty(2, 1.0)
    numpy.testing.assert_allclose(scores, [expected_row0, expected_row1], rtol=1e-12)


def test_beam_without_length_penalty_keeps_first_ended():
    tokens, _, _ = run_scripted(beam_size=2, alpha=0.0)

    numpy.testing.assert_array_equal(tokens, [[EOS, PAD], [4, EOS]])


def test_scripted_beam_size_one_is_greedy():
    # Greedy takes EOS first in row 0, missing the better "3 4 EOS".
    tokens, _, _ = run_scripted(beam_size=1, alpha=1.0)

    numpy.testing.assert_array_equal(tokens, [[EOS, PAD], [4, EOS]])


def test_scripted_early_stopping_saves_steps():
    early, early_scores, early_steps = run_scripted(beam_size=2, alpha=1.0)
    full, full_scores, full_steps = run_scripted(
        beam_size=2, alpha=1.0, early_stopping=False
    )

    numpy.testing.assert_array_equal(early, full)
    numpy.testing.assert_array_equal(early_scores, full_scores)
    # Row 0 is settled after 3 steps: the open "3 4 3" (log P about -6.4) cannot
    # beat -0.83 even at max_len. Without the bound the search runs all 6 steps.
    assert early_steps == 3
    assert full_steps == 6


# EOS first scores log 0.55 = -0.60, and "3" is open with log P = log 0.45 = -0.80 after
# step 1. Only a bound that divides by lp(max_len) = 11/6 (giving -0.44) keeps it. A
# bound with lp(2) = 7/6 (giving -0.69) would stop the row and miss
# "3 3 3 3 3 EOS", which scores log(0.45 * 0.99**5) / (11/6) = -0.46.
LATE_WINNER_SCRIPT = {
    (): {EOS: 0.55, 3: 0.45},
    **{(3,) * n: {3: 0.99, EOS: 0.005, 4: 0.005} for n in range(1, 5)},
    (3, 3, 3, 3, 3): {EOS: 0.99, 3: 0.005, 4: 0.005},
}


def test_beam_early_stopping_keeps_late_winner():
    best, best_score = best_by_enumeration(LATE_WINNER_SCRIPT, max_len=6, alpha=1.0)
    assert best == (3, 3, 3, 3, 3, EOS)

    tokens, scores, _ = run_scripted(
        beam_size=2, alpha=1.0, scripts=[LATE_WINNER_SCRIPT]
    )

    numpy.testing.assert_array_equal(tokens, [best])
    numpy.testing.assert_allclose(scores, [best_score], rtol=1e-12)
