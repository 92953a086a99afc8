"""Ids that no search outputs: no target holds them."""

from __future__ import annotations

from keras import ops

from tandem.data.vocabulary import PAD_ID, START_ID

# Padding inside a hypothesis would vanish from its text but count in its score (n-best lists
# of one text twice), and the start id only ever begins a sequence. Models trained without
# masking learn padding after the end, so they do give it probability.
NEVER_OUTPUT = (PAD_ID, START_ID)


def without(log_probs, ids=NEVER_OUTPUT, fill: float = -1e30):
    """log_probs (..., vocab) with the columns of `ids` set to `fill`, so no search picks them."""
    banned = [index in ids for index in range(log_probs.shape[-1])]
    return ops.where(ops.convert_to_tensor(banned), fill, log_probs)
