"""Numbers in, numbers out: encode sentence pairs as padded id arrays for teacher forcing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tandem.data.vocabulary import END_ID, PAD_ID, START_ID, Vocabulary


@dataclass(frozen=True)
class EncodedPairs:
    """Id arrays for teacher forcing; decoder targets are decoder inputs one step ahead."""

    source_ids: np.ndarray  # (pairs, max_encoder_seq_length) int32, padded with PAD_ID
    decoder_input_ids: np.ndarray  # (pairs, max_decoder_seq_length): start, target, end, pad
    decoder_target_ids: np.ndarray  # (pairs, max_decoder_seq_length): target, end, pad

    def __len__(self) -> int:
        return len(self.source_ids)

    def take(self, index) -> EncodedPairs:
        return EncodedPairs(
            self.source_ids[index], self.decoder_input_ids[index], self.decoder_target_ids[index]
        )


def pad_ids(sequences: Sequence[Sequence[int]], length: int) -> np.ndarray:
    """Right-pad id lists with PAD_ID (truncating longer ones) into an int32 array."""
    array = np.full((len(sequences), length), PAD_ID, dtype=np.int32)
    for row, ids in enumerate(sequences):
        ids = list(ids)[:length]
        array[row, : len(ids)] = ids
    return array


def encode_sources(
    texts: Sequence[str], vocab: Vocabulary, length: int
) -> tuple[np.ndarray, list[int]]:
    """Source texts -> (ids (texts, length), original token counts) for encoding."""
    encoded = [vocab.encode(text) for text in texts]
    return pad_ids(encoded, length), [len(ids) for ids in encoded]


def encode_pairs(
    pairs: Sequence[tuple[str, str]],
    source_vocab: Vocabulary,
    target_vocab: Vocabulary,
    max_encoder_seq_length: int,
    max_decoder_seq_length: int,
) -> EncodedPairs:
    """Encode pairs as the example does: the target framed by start and end ids."""
    source_ids, _ = encode_sources([s for s, _ in pairs], source_vocab, max_encoder_seq_length)
    framed = [[START_ID, *target_vocab.encode(t), END_ID] for _, t in pairs]
    decoder_input_ids = pad_ids(framed, max_decoder_seq_length)
    decoder_target_ids = pad_ids([ids[1:] for ids in framed], max_decoder_seq_length)
    return EncodedPairs(source_ids, decoder_input_ids, decoder_target_ids)
