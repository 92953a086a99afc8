"""Tests for tandem.decoding: greedy, beam and sampling against fake step functions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from keras import ops

from tandem.data.vocabulary import END_ID, PAD_ID, START_ID, UNK_ID
from tandem.decoding import beam_search, compile_stateless, greedy_search, sample
from tandem.decoding.beam import length_penalty

LETTERS = "abcd"  # ids 4..7
VOCAB = 4 + len(LETTERS)
FLOOR = 1e-6  # probability of every token a fake decoder does not mention


def token_id(symbol: str) -> int:
    return END_ID if symbol == "$" else 4 + LETTERS.index(symbol)


def spell(text: str, length: int) -> list[int]:
    """'ab$' -> ids of a, b, END, then PAD up to `length`."""
    ids = [token_id(symbol) for symbol in text]
    return ids + [PAD_ID] * (length - len(ids))


class TreeDecoder:
    """A fake decoder that spells known strings: no training, no model.

    Each tree maps a prefix (a string of letters) to its next-token probabilities, '$'
    standing for END_ID; unmentioned tokens get FLOOR (PAD_ID and START_ID far less). The state is the node of the
    prefix read so far, one (batch,) int32 array; batch row i starts at tree `rows[i]`.
    """

    def __init__(self, *trees: dict):
        keys = [(tree, prefix) for tree, prefixes in enumerate(trees) for prefix in prefixes]
        self.nodes = {key: node for node, key in enumerate(keys)}
        sink = len(keys)  # reached only through FLOOR tokens: ends at once
        self.log_probs = np.full((sink + 1, VOCAB), np.log(FLOOR), "float32")
        self.log_probs[:, [PAD_ID, START_ID]] = np.log(1e-30)  # never worth generating
        self.log_probs[sink, END_ID] = 0.0
        self.transitions = np.full((sink + 1, VOCAB), sink, "int32")
        for (tree, prefix), node in self.nodes.items():
            for symbol, prob in trees[tree][prefix].items():
                self.log_probs[node, token_id(symbol)] = np.log(prob)
                child = self.nodes.get((tree, prefix + symbol))
                if child is not None:
                    self.transitions[node, token_id(symbol)] = child

    def state(self, rows):
        return ops.convert_to_tensor([self.nodes[(tree, "")] for tree in rows], "int32")

    def step(self, tokens, node):
        moved = ops.take(self.transitions.reshape(-1), node * VOCAB + tokens)  # (batch,)
        node = ops.where(tokens == START_ID, node, moved)
        return ops.take(self.log_probs, node, axis=0), node  # (batch, vocab)

    def score(self, ids, tree: int = 0, alpha: float = 0.0) -> float:
        """Normalised log-prob of one generated id sequence, as beam search scores it."""
        node, total, length = self.nodes[(tree, "")], 0.0, 0
        for token in ids:
            if token == PAD_ID:
                break
            total += float(self.log_probs[node, token])
            length += 1
            node = self.transitions[node, token]
            if token == END_ID:
                break
        return total / ((5 + length) / 6) ** alpha


# The argmax first token "a" leads to a flat, low-probability continuation:
# greedy gives "ac$" (0.5 * 0.4 = 0.2), the best sequence is "b$" (0.4 * 0.95 = 0.38).
TRAP = {
    "": {"a": 0.5, "b": 0.4, "$": 0.1},
    "a": {"c": 0.4, "d": 0.3, "$": 0.3},
    "ac": {"$": 1.0},
    "ad": {"$": 1.0},
    "b": {"$": 0.95, "c": 0.05},
    "bc": {"$": 1.0},
}
# "a$" is likelier (0.55) than "bcdc$" (0.45) but much shorter.
SHORT_OR_LONG = {
    "": {"a": 0.55, "b": 0.45},
    "a": {"$": 1.0},
    "b": {"c": 1.0},
    "bc": {"d": 1.0},
    "bcd": {"c": 1.0},
    "bcdc": {"$": 1.0},
}
# Strings of a and b that never end; the next letter depends on the last one.
NEVER_ENDS = {"": {"a": 0.5, "b": 0.3, "$": 1e-3}}
for _length in range(1, 6):
    for _prefix in itertools.product("ab", repeat=_length):
        NEVER_ENDS["".join(_prefix)] = (
            {"a": 0.6, "b": 0.4} if _prefix[-1] == "a" else {"a": 0.3, "b": 0.7}
        )


def random_bigram(seed: int = 0, batch_size: int = 3, keep_out=(PAD_ID, START_ID)):
    """A step conditioned on the previous token through a random table; state: position."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(VOCAB, VOCAB))
    logits[:, list(keep_out)] = -30.0  # keep PAD and START out of the output
    logits[:, END_ID] += 0.5
    table = (logits - np.log(np.exp(logits).sum(-1, keepdims=True))).astype("float32")

    def step(tokens, position):
        return ops.take(table, tokens, axis=0), position + 1  # (batch, vocab)

    return step, ops.zeros((batch_size,), "int32")


def numpy(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


# --- greedy ---------------------------------------------------------------------------------


def test_greedy_follows_argmax_and_pads_after_end():
    decoder = TreeDecoder(TRAP)
    tokens = numpy(greedy_search(decoder.step, decoder.state([0]), 1, max_length=6)[0])
    assert tokens.dtype == np.int32
    assert tokens.tolist() == [spell("ac$", 6)]


def test_greedy_stops_at_max_length_without_end():
    decoder = TreeDecoder(NEVER_ENDS)
    tokens = numpy(greedy_search(decoder.step, decoder.state([0, 0]), 2, max_length=4)[0])
    assert tokens.tolist() == [spell("aaaa", 4)] * 2


def test_greedy_batch_ends_at_different_steps():
    decoder = TreeDecoder(TRAP, SHORT_OR_LONG, NEVER_ENDS)
    tokens, scores = greedy_search(decoder.step, decoder.state([1, 0, 2]), 3, max_length=5)
    tokens, scores = numpy(tokens), numpy(scores)
    assert tokens.tolist() == [spell("a$", 5), spell("ac$", 5), spell("aaaaa", 5)]
    # Each scores its own tokens' log-probs up to its end, nothing after it.
    assert scores.shape == (3,) and scores.dtype == np.float32
    expected = [decoder.score(row, tree) for row, tree in zip(tokens, [1, 0, 2], strict=True)]
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    np.testing.assert_allclose(scores[:2], [np.log(0.55), np.log(0.5 * 0.4)], rtol=1e-6)


# --- beam search ----------------------------------------------------------------------------


def test_beam_finds_what_greedy_misses_and_scores_it():
    decoder = TreeDecoder(TRAP)
    tokens, scores = beam_search(decoder.step, decoder.state([0]), 1, 6, beam_size=2)
    tokens, scores = numpy(tokens), numpy(scores)
    assert tokens.shape == (1, 1, 6) and tokens.dtype == np.int32
    assert scores.shape == (1, 1) and scores.dtype == np.float32
    assert tokens[0, 0].tolist() == spell("b$", 6)
    np.testing.assert_allclose(scores[0, 0], np.log(0.4 * 0.95), rtol=1e-6)
    assert scores[0, 0] > decoder.score(spell("ac$", 6))


def test_beam_nbest_is_sorted_distinct_and_scored():
    decoder = TreeDecoder(TRAP, SHORT_OR_LONG)
    tokens, scores = beam_search(decoder.step, decoder.state([0, 1]), 2, 6, beam_size=3, nbest=3)
    tokens, scores = numpy(tokens), numpy(scores)
    assert tokens.shape == (2, 3, 6) and scores.shape == (2, 3)
    assert [row.tolist() for row in tokens[0]] == [spell("b$", 6), spell("ac$", 6), spell("a$", 6)]
    for row in range(2):
        assert np.all(np.diff(scores[row]) <= 0)
        assert len({tuple(hypothesis) for hypothesis in tokens[row].tolist()}) == 3
        for hypothesis, score in zip(tokens[row], scores[row], strict=True):
            np.testing.assert_allclose(score, decoder.score(hypothesis, tree=row), rtol=1e-5)


def test_length_normalisation_changes_the_winner():
    decoder = TreeDecoder(SHORT_OR_LONG)
    raw, _ = beam_search(decoder.step, decoder.state([0]), 1, 8, beam_size=2, alpha=0.0)
    assert numpy(raw)[0, 0].tolist() == spell("a$", 8)
    for max_length in (8, 12):  # stopping early must not cut the long winner off
        tokens, scores = beam_search(
            decoder.step, decoder.state([0]), 1, max_length, beam_size=2, alpha=1.0
        )
        assert numpy(tokens)[0, 0].tolist() == spell("bcdc$", max_length)
        expected = np.log(0.45) / ((5 + 5) / 6)
        np.testing.assert_allclose(numpy(scores)[0, 0], expected, rtol=1e-5)


def test_an_alpha_whose_penalty_overflows_is_refused():
    decoder = TreeDecoder(TRAP)
    with pytest.raises(ValueError, match="the length penalty at 10000 steps overflows"):
        beam_search(decoder.step, decoder.state([0]), 1, 10_000, beam_size=2, alpha=12.0)


def test_length_penalty_is_gnmt():
    assert float(numpy(length_penalty(1, 0.0))) == 1.0
    np.testing.assert_allclose(numpy(length_penalty(7, 0.6)), 2.0**0.6, rtol=1e-6)


def test_beam_returns_open_beams_when_nothing_ends():
    decoder = TreeDecoder(NEVER_ENDS)
    tokens, scores = beam_search(decoder.step, decoder.state([0]), 1, 3, beam_size=2, nbest=2)
    # After "aa" (0.3) and "bb" (0.21): "aaa" 0.18 and "bbb" 0.147 beat "aab" 0.12.
    assert [row.tolist() for row in numpy(tokens)[0]] == [spell("aaa", 3), spell("bbb", 3)]
    np.testing.assert_allclose(numpy(scores)[0], [np.log(0.18), np.log(0.147)], rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_size_one_is_greedy(seed):
    step, state = random_bigram(seed)
    greedy, greedy_scores = greedy_search(step, state, 3, 7)
    tokens, scores = beam_search(step, state, 3, 7, beam_size=1)
    np.testing.assert_array_equal(numpy(tokens)[:, 0], numpy(greedy))
    np.testing.assert_allclose(numpy(scores)[:, 0], numpy(greedy_scores), rtol=1e-5)
    decoder = TreeDecoder(TRAP, SHORT_OR_LONG, NEVER_ENDS)
    greedy = numpy(greedy_search(decoder.step, decoder.state([0, 1, 2]), 3, 5)[0])
    tokens, _ = beam_search(decoder.step, decoder.state([0, 1, 2]), 3, 5, beam_size=1)
    np.testing.assert_array_equal(numpy(tokens)[:, 0], greedy)


def trigram_table(seed: int = 3) -> np.ndarray:
    """log p(next | previous, current), (vocab, vocab, vocab)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=1.5, size=(VOCAB, VOCAB, VOCAB))
    logits[..., [PAD_ID, START_ID]] = -30.0
    return (logits - np.log(np.exp(logits).sum(-1, keepdims=True))).astype("float32")


def trigram_score(table, ids, scale: float, alpha: float) -> float:
    previous, current, total, length = START_ID, START_ID, 0.0, 0
    for token in ids:
        if token == PAD_ID:
            break
        total += scale * float(table[previous, current, token])
        previous, current, length = current, token, length + 1
    return total / ((5 + length) / 6) ** alpha


@pytest.mark.parametrize(("nest", "alpha"), [("tuple", 0.0), ("dict", 0.6)])
def test_beam_reorders_nested_state_with_the_chosen_beams(nest, alpha):
    """The step reads the token before `tokens` from its state, so a state left with the
    wrong beam or batch row changes the scores; every leaf must follow the chosen parent."""
    table = trigram_table()
    flat_table = table.reshape(VOCAB * VOCAB, VOCAB)
    scales = np.array([[1.0], [2.0]], "float32")  # per batch row: rows must not mix
    max_length = 6

    if nest == "tuple":
        state = (ops.full((2,), START_ID, "int32"), ops.convert_to_tensor(scales))

        def step(tokens, state):
            previous, scale = state
            log_probs = ops.take(flat_table, previous * VOCAB + tokens, axis=0)  # (batch, vocab)
            return log_probs * scale, (tokens, scale)

    else:
        history = np.full((2, max_length + 1), PAD_ID, "int32")
        history[:, 0] = START_ID
        state = {
            "history": ops.convert_to_tensor(history),  # tokens fed so far
            "position": ops.zeros((2,), "int32"),
            "scale": {"value": ops.convert_to_tensor(scales)},
        }

        def step(tokens, state):
            position = state["position"]  # (batch,)
            previous = ops.take_along_axis(state["history"], position[:, None], axis=1)[:, 0]
            log_probs = ops.take(flat_table, previous * VOCAB + tokens, axis=0)  # (batch, vocab)
            columns = ops.arange(max_length + 1)[None, :]  # (1, max_length + 1)
            history = ops.where(columns == position[:, None] + 1, tokens[:, None], state["history"])
            new_state = {"history": history, "position": position + 1, "scale": state["scale"]}
            return log_probs * state["scale"]["value"], new_state

    tokens, scores = beam_search(step, state, 2, max_length, beam_size=4, alpha=alpha, nbest=4)
    tokens, scores = numpy(tokens), numpy(scores)
    for row in range(2):
        assert np.all(np.diff(scores[row]) <= 0)
        assert len({tuple(hypothesis) for hypothesis in tokens[row].tolist()}) == 4
        for hypothesis, score in zip(tokens[row], scores[row], strict=True):
            expected = trigram_score(table, hypothesis, float(scales[row, 0]), alpha)
            np.testing.assert_allclose(score, expected, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs", [{"nbest": 3, "beam_size": 2}, {"nbest": 0}, {"beam_size": 0}, {"alpha": -0.5}]
)
def test_beam_rejects_bad_settings(kwargs):
    decoder = TreeDecoder(TRAP)
    with pytest.raises(ValueError):
        beam_search(decoder.step, decoder.state([0]), 1, 4, **kwargs)


# --- sampling -------------------------------------------------------------------------------

FLAT = {"": {symbol: 0.24 for symbol in LETTERS} | {"$": 0.04}}
for _prefix in ("a", "b", "c", "d"):
    FLAT[_prefix] = FLAT[""]


def flat_sample(seed, **kwargs):
    decoder = TreeDecoder(FLAT)
    return numpy(sample(decoder.step, decoder.state([0] * 4), 4, 2, seed=seed, **kwargs)[0])


def test_sampling_repeats_with_a_seed_and_varies_across_seeds():
    first = flat_sample(seed=7)
    assert first.shape == (4, 2) and first.dtype == np.int32
    np.testing.assert_array_equal(first, flat_sample(seed=7))
    assert not np.array_equal(first, flat_sample(seed=8))


@pytest.mark.parametrize("kwargs", [{"top_k": 1}, {"temperature": 1e-4}, {"temperature": 1e-30}])
def test_sampling_can_be_greedy(kwargs):
    # Sampling never draws <unk>; greedy search takes the argmax, whatever it is.
    step, state = random_bigram(seed=5, batch_size=4, keep_out=(PAD_ID, START_ID, UNK_ID))
    greedy, greedy_scores = greedy_search(step, state, 4, 8)
    tokens, scores = sample(step, state, 4, 8, seed=3, **kwargs)
    np.testing.assert_array_equal(numpy(tokens), numpy(greedy))
    # The score is the model's log-probability, not the temperature's or top-k's.
    np.testing.assert_allclose(numpy(scores), numpy(greedy_scores), rtol=1e-5)


def test_sampling_scores_the_models_log_probability_of_each_sample():
    decoder = TreeDecoder(TRAP, SHORT_OR_LONG)
    rows = [0, 1] * 8
    tokens, scores = sample(decoder.step, decoder.state(rows), 16, 6, temperature=2.0, seed=4)
    tokens, scores = numpy(tokens), numpy(scores)
    expected = [decoder.score(row, tree) for row, tree in zip(tokens, rows, strict=True)]
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert len({tuple(row) for row in tokens}) > 2  # the case is not trivial


def test_a_rows_samples_depend_on_its_stream_not_on_its_batch():
    decoder = TreeDecoder(FLAT)

    def draw(streams, seed=7):
        state = decoder.state([0] * len(streams))
        return numpy(sample(decoder.step, state, len(streams), 2, seed=seed, streams=streams)[0])

    together = draw([10, 11, 12, 13, 14, 15])
    for position, stream in enumerate([10, 11, 12, 13, 14, 15]):
        np.testing.assert_array_equal(draw([stream])[0], together[position])
    np.testing.assert_array_equal(draw([13, 12])[::-1], together[2:4])


def test_streams_seeds_and_steps_do_not_share_draws():
    # Four equally likely letters and no end: 4**6 sequences, so 48 rows drawn independently
    # repeat one only by rare chance.
    log_probs = np.full((VOCAB,), -1e9, "float32")
    log_probs[4:] = np.log(0.25)

    def step(tokens, state):
        return ops.tile(ops.convert_to_tensor(log_probs)[None, :], (tokens.shape[0], 1)), state

    rows = [numpy(sample(step, ops.zeros((24,)), 24, 6, seed=seed)[0]) for seed in (7, 8)]
    many = np.concatenate(rows)
    assert len({tuple(row) for row in many}) >= 46
    # Stream s at step t + 1 does not repeat stream s + 1 at step t.
    assert np.mean(rows[0][:-1, 1:] == rows[0][1:, :-1]) < 0.5


def test_sampling_top_k_keeps_the_k_best_in_proportion():
    probs = np.array([0.0, 0.0, 0.05, 0.05, 0.5, 0.3, 0.1, 0.0], "float32")
    log_probs = np.log(np.maximum(probs, 1e-9))

    def step(tokens, state):
        return ops.tile(ops.convert_to_tensor(log_probs)[None, :], (tokens.shape[0], 1)), state

    drawn = numpy(sample(step, ops.zeros((2000,)), 2000, 1, top_k=2, seed=1)[0])[:, 0]
    assert set(drawn.tolist()) == {4, 5}
    assert abs(np.mean(drawn == 4) - 0.5 / 0.8) < 0.05


def test_sampling_never_draws_padding_start_or_unknown():
    # A flat distribution at a huge temperature: every id is as likely, the reserved ones too.
    def step(tokens, state):
        return ops.zeros((tokens.shape[0], 8)), state

    drawn = numpy(sample(step, ops.zeros((500,)), 500, 3, temperature=1e30, seed=2)[0])
    assert set(drawn[:, 0].tolist()) == {END_ID, 4, 5, 6, 7}
    assert not np.isin(drawn, [START_ID, UNK_ID]).any()


def test_no_search_outputs_padding_or_the_start_id():
    # A model trained without masking learns padding after the end; here padding and the
    # start id are the most probable tokens at every step.
    probs = np.array([0.4, 0.2, 0.1, 0.0, 0.15, 0.1, 0.05, 0.0], "float32")
    log_probs = ops.convert_to_tensor(np.log(np.maximum(probs, 1e-9)))

    def step(tokens, state):
        return ops.tile(log_probs[None, :], (tokens.shape[0], 1)), state

    greedy = numpy(greedy_search(step, ops.zeros((2,)), 2, 4)[0])
    assert greedy.tolist() == [[4, 4, 4, 4]] * 2
    tokens, scores = beam_search(step, ops.zeros((1,)), 1, 4, beam_size=4, nbest=4)
    hypotheses = [tuple(row) for row in numpy(tokens)[0]]
    for row in hypotheses:  # padding only after the end, never the start id
        end = row.index(END_ID) if END_ID in row else len(row)
        assert not set(row[:end]) & {PAD_ID, START_ID} and set(row[end + 1 :]) <= {PAD_ID}
    assert len(set(hypotheses)) == 4 and np.isfinite(numpy(scores)).all()


def test_a_tiny_temperature_samples_the_best_allowed_token():
    # The best allowed token is improbable (0.3): scaled by 1e-30, every log-prob overflows
    # far below any fixed "banned" fill, and still only token 4 may be drawn.
    probs = np.array([0.1, 0.1, 0.05, 0.1, 0.3, 0.2, 0.1, 0.05], "float32")
    log_probs = ops.convert_to_tensor(np.log(probs))

    def step(tokens, state):
        return ops.tile(log_probs[None, :], (tokens.shape[0], 1)), state

    for temperature in (1e-30, 1e-45):
        tokens, scores = sample(step, ops.zeros((64,)), 64, 3, temperature=temperature, seed=1)
        assert (numpy(tokens) == 4).all()
        np.testing.assert_allclose(numpy(scores), 3 * np.log(0.3), rtol=1e-5)


def test_sampling_pads_after_end():
    decoder = TreeDecoder(TRAP)
    tokens = numpy(sample(decoder.step, decoder.state([0] * 8), 8, 6, seed=0)[0])
    for row in tokens.tolist():
        assert END_ID in row
        end = row.index(END_ID)
        assert row[end + 1 :] == [PAD_ID] * (5 - end)


@pytest.mark.parametrize("kwargs", [{"temperature": 0.0}, {"temperature": -1.0}, {"top_k": 0}])
def test_sampling_rejects_bad_settings(kwargs):
    decoder = TreeDecoder(TRAP)
    with pytest.raises(ValueError):
        sample(decoder.step, decoder.state([0]), 1, 4, **kwargs)


# --- compiled == eager ----------------------------------------------------------------------

STRATEGIES = {
    "greedy": lambda step, state: greedy_search(step, state, 3, 6),
    "beam": lambda step, state: beam_search(step, state, 3, 6, beam_size=3, alpha=0.6, nbest=2),
    "sample": lambda step, state: sample(step, state, 3, 6, temperature=1.5, top_k=3, seed=11),
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_compiled_equals_eager(name):
    decoder = TreeDecoder(TRAP, SHORT_OR_LONG, NEVER_ENDS)
    strategy = STRATEGIES[name]

    def decode(state):
        return strategy(decoder.step, state)

    state = decoder.state([0, 1, 2])
    eager = [numpy(x) for x in _flat(decode(state))]
    compiled = [numpy(x) for x in _flat(compile_stateless(decode, [])(state))]
    for eager_array, compiled_array in zip(eager, compiled, strict=True):
        np.testing.assert_allclose(eager_array, compiled_array, rtol=1e-6)


def _flat(result):
    return list(result) if isinstance(result, tuple) else [result]
