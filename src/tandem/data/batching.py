"""Numbers in, numbers out: sentence pairs as token id arrays, padded a batch at a time."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tandem.data.vocabulary import PAD_ID, Vocabulary


@dataclass(frozen=True)
class EncodedPairs:
    """The corpus as token ids, unpadded: one flat id array per side and offsets into it.

    Memory is the ids themselves (4 bytes a token); padded teacher-forcing arrays are cut a
    batch at a time by `padded`. Pair i's source is `source_ids[source_offsets[i]:
    source_offsets[i + 1]]`; its target is framed by start and end ids, so the decoder inputs
    are the framed ids and the decoder targets the same ids one step ahead.
    """

    source_ids: np.ndarray  # (source tokens,) int32
    source_offsets: np.ndarray  # (pairs + 1,) int64
    target_ids: np.ndarray  # (framed target tokens,) int32: start, target, end per pair
    target_offsets: np.ndarray  # (pairs + 1,) int64
    max_encoder_seq_length: int  # the width of a full padded batch
    max_decoder_seq_length: int

    def __len__(self) -> int:
        return len(self.source_offsets) - 1

    @property
    def source_lengths(self) -> np.ndarray:
        return np.diff(self.source_offsets)  # (pairs,)

    @property
    def target_lengths(self) -> np.ndarray:
        """Framed lengths (start + target + end), which is the real steps of decoder inputs."""
        return np.diff(self.target_offsets)  # (pairs,)

    def take(self, index) -> EncodedPairs:
        """The pairs at `index` (a slice, or integer or boolean positions), in that order."""
        if isinstance(index, slice) and index.step in (None, 1):  # views, no copy of the ids
            start, stop, _ = index.indices(len(self))
            stop = max(start, stop)
            source_ids, source_offsets = _cut(self.source_ids, self.source_offsets, start, stop)
            target_ids, target_offsets = _cut(self.target_ids, self.target_offsets, start, stop)
        else:
            rows = np.arange(len(self))[index]
            source_ids, source_offsets = _gather(self.source_ids, self.source_offsets, rows)
            target_ids, target_offsets = _gather(self.target_ids, self.target_offsets, rows)
        return EncodedPairs(
            source_ids,
            source_offsets,
            target_ids,
            target_offsets,
            self.max_encoder_seq_length,
            self.max_decoder_seq_length,
        )

    def padded(
        self,
        rows: np.ndarray | None = None,
        source_steps: int | None = None,
        target_steps: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Teacher-forcing arrays for `rows` (default: all), as the example lays them out.

        Returns:
            source (rows, source_steps), decoder inputs (rows, target_steps): start, target,
            end, then padding; decoder targets (rows, target_steps): target, end, padding.
            Steps default to the full widths; longer sequences are cut.
        """
        rows = np.arange(len(self)) if rows is None else np.asarray(rows)
        source_steps = source_steps or self.max_encoder_seq_length
        target_steps = target_steps or self.max_decoder_seq_length
        source = _pad(self.source_ids, self.source_offsets, rows, 0, source_steps)
        decoder_inputs = _pad(self.target_ids, self.target_offsets, rows, 0, target_steps)
        targets = _pad(self.target_ids, self.target_offsets, rows, 1, target_steps)
        return source, decoder_inputs, targets


def pad_ids(sequences: Sequence[Sequence[int]], length: int) -> np.ndarray:
    """Right-pad id lists with PAD_ID (truncating longer ones) into an int32 array."""
    padded = np.full((len(sequences), length), PAD_ID, dtype=np.int32)
    for row, ids in enumerate(sequences):
        ids = list(ids)[:length]
        padded[row, : len(ids)] = ids
    return padded


def encode_sources(
    texts: Sequence[str], vocab: Vocabulary, length: int
) -> tuple[np.ndarray, list[int]]:
    """Source texts -> (ids (texts, length), original token counts) for encoding."""
    encoded = [vocab.encode(text) for text in texts]
    return pad_ids(encoded, length), [len(ids) for ids in encoded]


def encode_pairs(
    pairs: Iterable[tuple[str, str]],
    source_vocab: Vocabulary,
    target_vocab: Vocabulary,
    max_encoder_seq_length: int | None = None,
    max_decoder_seq_length: int | None = None,
) -> EncodedPairs:
    """Encode pairs as the example does, the target framed by start and end ids.

    The ids go straight into compact arrays, a pair at a time: no per-token Python objects
    outlive the pair being encoded. The padded widths default to the longest source and the
    longest framed target.
    """
    source_ids, target_ids = array("i"), array("i")
    source_offsets, target_offsets = array("q", [0]), array("q", [0])
    for source, target in pairs:
        source_ids.extend(source_vocab.encode(source))
        target_ids.extend(target_vocab.encode(target, add_start=True, add_end=True))
        source_offsets.append(len(source_ids))
        target_offsets.append(len(target_ids))
    source_offsets = np.frombuffer(source_offsets, dtype=np.int64)
    target_offsets = np.frombuffer(target_offsets, dtype=np.int64)
    return EncodedPairs(
        np.frombuffer(source_ids, dtype=np.int32),
        source_offsets,
        np.frombuffer(target_ids, dtype=np.int32),
        target_offsets,
        max_encoder_seq_length or int(np.diff(source_offsets).max(initial=0)),
        max_decoder_seq_length or int(np.diff(target_offsets).max(initial=0)),
    )


def _cut(ids: np.ndarray, offsets: np.ndarray, start: int, stop: int) -> tuple:
    """The sequences start..stop-1: a view of the ids, and offsets from 0."""
    return ids[offsets[start] : offsets[stop]], offsets[start : stop + 1] - offsets[start]


def _gather(ids: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple:
    """The flat ids and offsets of the sequences `rows`, in that order."""
    lengths = offsets[rows + 1] - offsets[rows]  # (rows,)
    new_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    # Position k of the result is token k - new_offsets[j] of sequence rows[j].
    starts = np.repeat(offsets[rows] - new_offsets[:-1], lengths)
    return ids[starts + np.arange(new_offsets[-1])], new_offsets


def _pad(ids: np.ndarray, offsets: np.ndarray, rows: np.ndarray, skip: int, steps: int):
    """(rows, steps) int32: each sequence from its token `skip` on, cut or padded with PAD_ID."""
    starts = offsets[rows] + skip  # (rows,)
    lengths = np.maximum(offsets[rows + 1] - starts, 0)  # (rows,)
    positions = np.arange(steps)  # (steps,)
    real = positions[None, :] < lengths[:, None]  # (rows, steps)
    flat = np.minimum(starts[:, None] + positions[None, :], len(ids) - 1)  # (rows, steps)
    return np.where(real, ids[flat] if len(ids) else PAD_ID, PAD_ID).astype(np.int32)
