"""Beam search with a pool of finished hypotheses and GNMT length normalisation."""

from __future__ import annotations

import keras
from keras import ops

from tandem.data.vocabulary import END_ID, PAD_ID, START_ID
from tandem.decoding.banned import without
from tandem.length_penalty import final_length_penalty

NEG_INF = float("-inf")


def length_penalty(length, alpha: float):
    """GNMT's ((5 + length) / 6) ** alpha; a hypothesis scores log_prob / length_penalty.

    `length` counts generated tokens, END_ID included; alpha=0 gives 1 (raw log-probs).
    """
    return ops.power((5.0 + ops.cast(length, "float32")) / 6.0, alpha)


def beam_search(
    step,
    state,
    batch_size: int,
    max_length: int,
    beam_size: int = 5,
    alpha: float = 0.0,
    nbest: int = 1,
):
    """Decode a batch by keeping the `beam_size` most probable open prefixes per sequence.

    Each step expands every open beam (never with padding or the start id, see
    `tandem.decoding.banned`), ranks the `2 * beam_size` best (beam, token) candidates by
    summed log-prob, and
    - moves an END_ID candidate into the finished pool only if it ranks within the first
      `beam_size` (as Hugging Face does), so `beam_size=1` is exactly greedy search;
    - keeps the `beam_size` best non-END candidates open, so the beam stays full.
    The finished pool holds the `nbest` best finished hypotheses by normalised score.
    A sequence stops once no open beam can beat the worst pooled one: log-probs never
    grow and the length penalty is largest at `max_length`, so an open beam's final
    score is at most `open_log_prob / length_penalty(max_length)`. Open beams still
    alive at `max_length` count as hypotheses, scored at that length.

    Runs as one `keras.ops.while_loop` with fixed shapes, like `greedy_search`, so it
    compiles whole under `compile_stateless`.

    Args:
        step: `(tokens (batch,), state) -> (log_probs (batch, vocab), state)`; log-probs
            must be <= 0 for the stopping bound to hold.
        state: the decoder state for `batch_size` sequences (any nest of arrays).
        batch_size: number of sequences.
        max_length: most tokens to generate per hypothesis, END_ID included.
        beam_size: open hypotheses kept per sequence.
        alpha: length-normalisation strength, >= 0; 0 ranks by raw log-prob sums.
        nbest: hypotheses returned per sequence, 1 <= nbest <= beam_size.

    Returns:
        `(tokens, scores)`: int32 (batch, nbest, max_length) ids, END_ID included where
        reached and PAD_ID after it; float32 (batch, nbest) normalised scores, best first.
        Scores of -inf mark rows padded because fewer than `nbest` hypotheses had a
        finite log-prob.

    Example:
        >>> tokens, scores = beam_search(model.step, model.encode(source_ids),
        ...                              batch_size=2, max_length=20, beam_size=4)
    """
    final_penalty = final_length_penalty(beam_size, nbest, alpha, max_length)
    batch, beam = batch_size, beam_size
    # Only beam 0 is live at first, so the first step does not fill the beam with copies.
    open_log_probs = ops.where(ops.arange(beam) == 0, 0.0, NEG_INF)  # (beam,)
    loop_vars = (
        ops.convert_to_tensor(0, "int32"),
        ops.full((batch, beam, max_length), PAD_ID, dtype="int32"),  # open_tokens
        ops.tile(ops.cast(open_log_probs, "float32")[None, :], (batch, 1)),  # (batch, beam)
        ops.full((batch, beam), START_ID, dtype="int32"),  # last_tokens
        ops.full((batch, nbest, max_length), PAD_ID, dtype="int32"),  # finished_tokens
        ops.full((batch, nbest), NEG_INF, dtype="float32"),  # finished_scores
        # Beams of one sequence are adjacent rows: row b * beam + k.
        keras.tree.map_structure(lambda x: ops.repeat(x, beam, axis=0), state),
    )

    def cond(index, open_tokens, open_log_probs, *rest):
        # A sequence that cannot improve has its open beams set to -inf (see _advance).
        return ops.logical_and(index < max_length, ops.any(open_log_probs > NEG_INF))

    def body(*loop_vars):
        return _advance(step, loop_vars, beam=beam, alpha=alpha, final_penalty=final_penalty)

    _, open_tokens, open_log_probs, _, finished_tokens, finished_scores, _ = ops.while_loop(
        cond, body, loop_vars
    )
    # Open beams still alive here reached max_length; the rest are -inf.
    scores = ops.concatenate([finished_scores, open_log_probs / final_penalty], axis=1)
    tokens = ops.concatenate([finished_tokens, open_tokens], axis=1)
    scores, best = ops.top_k(scores, nbest)  # (batch, nbest)
    return _gather_beams(tokens, best), scores  # (batch, nbest, max_length), (batch, nbest)


def _gather_beams(values, indices):
    """values (batch, n, ...) picked by indices (batch, m) -> (batch, m, ...)."""
    indices = ops.reshape(indices, indices.shape + (1,) * (len(values.shape) - 2))
    return ops.take_along_axis(values, indices, axis=1)


def _advance(step, loop_vars, *, beam: int, alpha: float, final_penalty: float):
    """One step of the search: expand every open beam, pool the ends, keep the best open."""
    index, open_tokens, open_log_probs, last_tokens, finished_tokens, finished_scores, state = (
        loop_vars
    )
    batch, nbest = finished_scores.shape
    flat_log_probs, state = step(ops.reshape(last_tokens, (batch * beam,)), state)
    vocab = flat_log_probs.shape[-1]  # flat_log_probs: (batch * beam, vocab)
    log_probs = without(ops.reshape(flat_log_probs, (batch, beam, vocab)), fill=NEG_INF)
    scores = open_log_probs[:, :, None] + log_probs  # (batch, beam, vocab)
    scores = ops.reshape(scores, (batch, beam * vocab))
    candidates = min(2 * beam, beam * vocab)
    # 2 * beam candidates always hold beam non-END ones: each beam ends at most once.
    candidate_scores, flat = ops.top_k(scores, candidates)  # (batch, 2 * beam)
    flat = ops.cast(flat, "int32")  # int64 on some backends (torch)
    parents = ops.floor_divide(flat, vocab)  # (batch, 2 * beam)
    tokens = ops.mod(flat, vocab)  # (batch, 2 * beam)
    candidate_tokens = _gather_beams(open_tokens, parents)  # (batch, 2 * beam, max_length)
    candidate_tokens = ops.slice_update(candidate_tokens, (0, 0, index), tokens[:, :, None])
    is_end = tokens == END_ID  # (batch, 2 * beam)

    ranked_in_beam = ops.arange(candidates)[None, :] < beam  # (1, 2 * beam)
    new_scores = candidate_scores / length_penalty(index + 1, alpha)
    new_scores = ops.where(ops.logical_and(is_end, ranked_in_beam), new_scores, NEG_INF)
    # Pool first, so on equal scores the hypothesis already kept stays.
    # (batch, nbest + 2 * beam) and (batch, nbest + 2 * beam, max_length):
    pool_scores = ops.concatenate([finished_scores, new_scores], axis=1)
    pool_tokens = ops.concatenate([finished_tokens, candidate_tokens], axis=1)
    finished_scores, kept = ops.top_k(pool_scores, nbest)  # (batch, nbest)
    finished_tokens = _gather_beams(pool_tokens, kept)  # (batch, nbest, max_length)

    open_candidates = ops.where(is_end, NEG_INF, candidate_scores)  # (batch, 2 * beam)
    open_log_probs, chosen = ops.top_k(open_candidates, beam)  # (batch, beam)
    open_tokens = _gather_beams(candidate_tokens, chosen)  # (batch, beam, max_length)
    last_tokens = _gather_beams(tokens, chosen)  # (batch, beam)
    batch_offsets = ops.arange(batch, dtype="int32")[:, None] * beam  # (batch, 1)
    rows = ops.reshape(batch_offsets + _gather_beams(parents, chosen), (batch * beam,))
    state = keras.tree.map_structure(lambda x: ops.take(x, rows, axis=0), state)

    best_possible = ops.max(open_log_probs, axis=1) / final_penalty  # (batch,)
    done = best_possible <= ops.min(finished_scores, axis=1)  # (batch,)
    open_log_probs = ops.where(done[:, None], NEG_INF, open_log_probs)
    return (
        index + 1,
        open_tokens,
        open_log_probs,
        last_tokens,
        finished_tokens,
        finished_scores,
        state,
    )
