"""Greedy search: feed each step's argmax back in until every sequence has ended."""

from __future__ import annotations

from keras import ops

from tandem.data.vocabulary import END_ID, PAD_ID, START_ID
from tandem.decoding.banned import without


def greedy_search(step, state, batch_size: int, max_length: int):
    """Decode a batch by always taking the most probable next token (never padding or the
    start id, see `tandem.decoding.banned`).

    Runs as one `keras.ops.while_loop`, so under `compile_stateless` there is no Python work
    per generated token. The loop ends when every sequence has produced END_ID or after
    `max_length` steps; positions after a sequence's end are PAD_ID.

    Args:
        step: `(tokens (batch,), state) -> (log_probs (batch, vocab), state)`.
        state: the decoder state after encoding the sources (any nest of arrays).
        batch_size: number of sequences.
        max_length: most tokens to generate per sequence, END_ID included.

    Returns:
        `(tokens, scores)`: int32 (batch, max_length) generated ids, END_ID included where
        reached; float32 (batch,) log-probabilities of those tokens, summed up to the end
        (what `beam_search` with `beam_size=1, alpha=0` scores).
    """
    output = ops.full((batch_size, max_length), PAD_ID, dtype="int32")
    tokens = ops.full((batch_size,), START_ID, dtype="int32")
    finished = ops.zeros((batch_size,), dtype="bool")
    scores = ops.zeros((batch_size,), dtype="float32")

    def cond(index, output, tokens, finished, scores, state):
        return ops.logical_and(index < max_length, ops.logical_not(ops.all(finished)))

    def body(index, output, tokens, finished, scores, state):
        log_probs, state = step(tokens, state)  # (batch, vocab)
        best = ops.cast(ops.argmax(without(log_probs), axis=-1), "int32")  # (batch,)
        chosen = ops.take_along_axis(log_probs, best[:, None], axis=1)[:, 0]  # (batch,)
        scores = scores + ops.where(finished, 0.0, ops.cast(chosen, "float32"))
        best = ops.where(finished, PAD_ID, best)
        output = ops.slice_update(output, (0, index), best[:, None])
        finished = ops.logical_or(finished, best == END_ID)
        return index + 1, output, best, finished, scores, state

    loop_vars = (ops.convert_to_tensor(0, "int32"), output, tokens, finished, scores, state)
    _, output, _, _, scores, _ = ops.while_loop(cond, body, loop_vars)
    return output, scores
