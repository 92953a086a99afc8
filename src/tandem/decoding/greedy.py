"""Greedy search: feed each step's argmax back in until every sequence has ended."""

from __future__ import annotations

from keras import ops

from tandem.decoding.banned import without
from tandem.decoding.loop import token_loop


def greedy_search(step, state, batch_size: int, max_length: int):
    """Decode a batch by always taking the most probable next token (never padding or the
    start id, see `tandem.decoding.banned`).

    Runs as one `keras.ops.while_loop` (`tandem.decoding.loop`), so under `compile_stateless`
    there is no Python work per generated token. The loop ends when every sequence has
    produced END_ID or after `max_length` steps; positions after a sequence's end are PAD_ID.

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

    def pick(log_probs, index):  # log_probs: (batch, vocab)
        return ops.argmax(without(log_probs), axis=-1)

    return token_loop(step, state, batch_size, max_length, pick)
