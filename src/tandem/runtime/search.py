"""Greedy and beam search in numpy, step for step those of `tandem.decoding`.

Each function keeps the contract and the arithmetic (float32, ties to the lower index) of its
compiled twin in `tandem.decoding`, so the same step function gives the same tokens: see
`tandem.decoding.greedy` and `tandem.decoding.beam` for the rules they share.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tandem.data.vocabulary import END_ID, PAD_ID, START_ID
from tandem.length_penalty import final_length_penalty

# What no search outputs (as `tandem.decoding.banned.NEVER_OUTPUT`).
NEVER_OUTPUT = (PAD_ID, START_ID)
NEG_INF = np.float32(-np.inf)

# (tokens (batch,), state) -> (log_probs (batch, vocab) float32, state)
Step = Callable[[np.ndarray, dict], tuple[np.ndarray, dict]]


def without(log_probs: np.ndarray, fill: float = -1e30) -> np.ndarray:
    """log_probs (..., vocab) with the columns of NEVER_OUTPUT set to `fill`."""
    allowed = log_probs.copy()
    allowed[..., list(NEVER_OUTPUT)] = np.float32(fill)
    return allowed


def top_k(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest of the last axis, largest first, equal ones by lower index (as XLA)."""
    indices = np.argsort(-values, axis=-1, kind="stable")[..., :k]
    return np.take_along_axis(values, indices, axis=-1), indices.astype(np.int32)


def greedy_search(step: Step, state: dict, batch_size: int, max_length: int):
    """Take the most probable allowed token until every sequence has ended.

    Returns:
        `(tokens, scores)`: int32 (batch, max_length), END_ID included where reached, PAD_ID
        after it; float32 (batch,) summed log-probabilities of the tokens up to the end.
    """
    output = np.full((batch_size, max_length), PAD_ID, dtype=np.int32)
    tokens = np.full((batch_size,), START_ID, dtype=np.int32)
    finished = np.zeros((batch_size,), dtype=bool)
    scores = np.zeros((batch_size,), dtype=np.float32)
    rows = np.arange(batch_size)
    for index in range(max_length):
        if finished.all():
            break
        log_probs, state = step(tokens, state)  # (batch, vocab)
        picked = np.argmax(without(log_probs), axis=-1).astype(np.int32)  # (batch,)
        scores = scores + np.where(finished, np.float32(0.0), log_probs[rows, picked])
        picked = np.where(finished, PAD_ID, picked).astype(np.int32)
        output[:, index] = picked
        finished |= picked == END_ID
        tokens = picked
    return output, scores


def length_penalty(length: int, alpha: float) -> np.float32:
    """GNMT's ((5 + length) / 6) ** alpha, in float32 as `tandem.decoding.beam`."""
    return np.power(np.float32(5.0 + length) / np.float32(6.0), np.float32(alpha))


def beam_search(
    step: Step,
    state: dict,
    batch_size: int,
    max_length: int,
    beam_size: int = 5,
    alpha: float = 0.0,
    nbest: int = 1,
):
    """Beam search with a pool of finished hypotheses, as `tandem.decoding.beam_search`.

    Args:
        step: as for `greedy_search`; called on batch_size * beam_size rows, the beams of a
            sequence adjacent (row b * beam + k).
        state: dict of arrays for `batch_size` rows, each repeated per beam here and reordered
            with the beams. Arrays that never change (the encoder's memory) are better kept
            by the step function itself, repeated per beam once.

    Returns:
        `(tokens, scores)`: int32 (batch, nbest, max_length); float32 (batch, nbest)
        normalised scores, best first; -inf marks rows without a hypothesis.
    """
    final_penalty = final_length_penalty(beam_size, nbest, alpha, max_length)
    batch, beam = batch_size, beam_size
    open_tokens = np.full((batch, beam, max_length), PAD_ID, dtype=np.int32)
    open_log_probs = np.tile(np.where(np.arange(beam) == 0, 0.0, NEG_INF), (batch, 1))
    open_log_probs = open_log_probs.astype(np.float32)  # (batch, beam)
    last_tokens = np.full((batch, beam), START_ID, dtype=np.int32)
    finished_tokens = np.full((batch, nbest, max_length), PAD_ID, dtype=np.int32)
    finished_scores = np.full((batch, nbest), NEG_INF, dtype=np.float32)
    state = {name: np.repeat(value, beam, axis=0) for name, value in state.items()}
    batch_offsets = np.arange(batch, dtype=np.int32)[:, None] * beam  # (batch, 1)
    for index in range(max_length):
        if not np.any(open_log_probs > NEG_INF):
            break
        flat_log_probs, state = step(last_tokens.reshape(batch * beam), state)
        vocab = flat_log_probs.shape[-1]  # flat_log_probs: (batch * beam, vocab)
        log_probs = without(flat_log_probs.reshape(batch, beam, vocab), fill=NEG_INF)
        scores = (open_log_probs[:, :, None] + log_probs).reshape(batch, beam * vocab)
        candidates = min(2 * beam, beam * vocab)
        candidate_scores, flat = top_k(scores, candidates)  # (batch, 2 * beam)
        parents, tokens = flat // vocab, flat % vocab  # (batch, 2 * beam)
        candidate_tokens = _gather(open_tokens, parents)  # (batch, 2 * beam, max_length)
        candidate_tokens[:, :, index] = tokens
        is_end = tokens == END_ID

        ranked_in_beam = np.arange(candidates)[None, :] < beam
        new_scores = candidate_scores / length_penalty(index + 1, alpha)
        new_scores = np.where(is_end & ranked_in_beam, new_scores, NEG_INF)
        pool_scores = np.concatenate([finished_scores, new_scores], axis=1)
        pool_tokens = np.concatenate([finished_tokens, candidate_tokens], axis=1)
        finished_scores, kept = top_k(pool_scores, nbest)  # (batch, nbest)
        finished_tokens = _gather(pool_tokens, kept)

        open_candidates = np.where(is_end, NEG_INF, candidate_scores)
        open_log_probs, chosen = top_k(open_candidates, beam)  # (batch, beam)
        open_tokens = _gather(candidate_tokens, chosen)
        last_tokens = _gather(tokens, chosen)
        rows = (batch_offsets + _gather(parents, chosen)).reshape(batch * beam)
        state = {name: value[rows] for name, value in state.items()}

        best_possible = open_log_probs.max(axis=1) / final_penalty  # (batch,)
        done = best_possible <= finished_scores.min(axis=1)
        open_log_probs = np.where(done[:, None], NEG_INF, open_log_probs).astype(np.float32)
    scores = np.concatenate([finished_scores, open_log_probs / final_penalty], axis=1)
    tokens = np.concatenate([finished_tokens, open_tokens], axis=1)
    scores, best = top_k(scores, nbest)
    return _gather(tokens, best), scores


def _gather(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """values (batch, n, ...) picked by indices (batch, m) -> (batch, m, ...)."""
    indices = indices.reshape(indices.shape + (1,) * (values.ndim - 2))
    return np.take_along_axis(values, indices, axis=1)
