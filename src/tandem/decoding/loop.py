"""The token-by-token loop that greedy search and sampling share; they differ in how they pick."""

from __future__ import annotations

from keras import ops

from tandem.data.vocabulary import END_ID, PAD_ID, START_ID


def token_loop(step, state, batch_size: int, max_length: int, pick):
    """Feed each picked token back in until every sequence has ended or `max_length` steps.

    One `keras.ops.while_loop` with fixed shapes, so under `compile_stateless` there is no
    Python work per generated token. Positions after a sequence's end are PAD_ID.

    Args:
        step: `(tokens (batch,), state) -> (log_probs (batch, vocab), state)`.
        state: the decoder state after encoding the sources (any nest of arrays).
        batch_size: number of sequences.
        max_length: most tokens to generate per sequence, END_ID included.
        pick: `(log_probs (batch, vocab), index) -> tokens (batch,)`, the strategy.

    Returns:
        `(tokens, scores)`: int32 (batch, max_length) ids, END_ID included where reached;
        float32 (batch,) the model's log-probabilities of those tokens, summed up to the end.
    """
    output = ops.full((batch_size, max_length), PAD_ID, dtype="int32")
    tokens = ops.full((batch_size,), START_ID, dtype="int32")
    finished = ops.zeros((batch_size,), dtype="bool")
    scores = ops.zeros((batch_size,), dtype="float32")

    def cond(index, output, tokens, finished, scores, state):
        return ops.logical_and(index < max_length, ops.logical_not(ops.all(finished)))

    def body(index, output, tokens, finished, scores, state):
        log_probs, state = step(tokens, state)  # (batch, vocab)
        picked = ops.cast(pick(log_probs, index), "int32")  # (batch,)
        chosen = ops.take_along_axis(log_probs, picked[:, None], axis=1)[:, 0]  # (batch,)
        scores = scores + ops.where(finished, 0.0, ops.cast(chosen, "float32"))
        picked = ops.where(finished, PAD_ID, picked)
        output = ops.slice_update(output, (0, index), picked[:, None])
        finished = ops.logical_or(finished, picked == END_ID)
        return index + 1, output, picked, finished, scores, state

    loop_vars = (ops.convert_to_tensor(0, "int32"), output, tokens, finished, scores, state)
    _, output, _, _, scores, _ = ops.while_loop(cond, body, loop_vars)
    return output, scores
