"""Batches for `fit`: padded id arrays cut from the unpadded corpus a batch at a time."""

from __future__ import annotations

import keras
import numpy as np

from tandem.data.batching import EncodedPairs
from tandem.data.vocabulary import PAD_ID
from tandem.training.devices import ONE_DEVICE, Replicas

# Masked models: batches are cut from length-sorted pools of this many batches, and padded to
# a multiple of STEP_BUCKET steps, so few steps are padding and few shapes are compiled.
POOL_BATCHES = 50
STEP_BUCKET = 8
# Every width is a program compiled (a training step, a validation step): of those multiples,
# each side keeps the fewest that pad at most this much more (see `bucket_widths`).
WIDTH_TOLERANCE = 0.03


class TrainingBatches(keras.utils.PyDataset):
    """Teacher-forcing batches of ids for `EncoderDecoder.fit_model`, never the whole corpus padded.

    The example one-hot encodes the whole corpus up front, padded to the longest sentence;
    here the corpus stays unpadded token ids (`EncodedPairs`), each batch is padded when it is
    asked for, and batches stay id arrays (one-hot models expand them inside the compiled
    step, see `EncoderDecoder.fit_model`), so memory stays at the size of the token ids. Targets are
    ids too (sparse cross-entropy equals categorical cross-entropy on one-hot targets).

    Args:
        pairs: encoded pairs.
        batch_size: pairs per batch (the last batch may be smaller, as in `fit`).
        shuffle: reshuffle the order every epoch, as `fit(shuffle=True)` does.
        seed: seed of the shuffling.
        mask_padding: add sample weights that are 0 at padded target steps, so padding does
            not count in the loss or the metrics (the loss divides a batch's weighted sum by
            its weights, the real tokens: see `tandem.training.losses`; no Keras mask reaches
            the output to do it); batches are then also length-bucketed, each
            padded only as far as its longest pair needs (an unmasked model reads padding, so
            it always gets the full width, as the example trains).
        replicas: data-parallel training: every batch is padded to a multiple of the replica
            count with rows of weight 0 (so no pair is dropped and none counts twice, and the
            loss, divided by the weights, is the real rows' own), and this process gets its
            share of the rows. Batches then always carry sample weights.
    """

    def __init__(
        self,
        pairs: EncodedPairs,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        *,
        mask_padding: bool = False,
        replicas: Replicas = ONE_DEVICE,
    ):
        super().__init__()
        self.pairs = pairs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.mask_padding = mask_padding
        self.replicas = replicas
        self.rng = np.random.default_rng(seed)
        self.source_lengths = pairs.source_lengths  # (pairs,)
        self.target_lengths = pairs.target_lengths  # (pairs,) real steps of the decoder inputs
        self.batches = self._make_batches()
        self.source_widths = self.target_widths = ()  # unmasked: the full width
        if mask_padding:  # from the first epoch's batches, so a resumed run gets the same
            self.source_widths, self.target_widths = (
                bucket_widths([lengths[rows].max() for rows in self.batches if len(rows)], limit)
                for lengths, limit in (
                    (self.source_lengths, pairs.max_encoder_seq_length),
                    (self.target_lengths, pairs.max_decoder_seq_length),
                )
            )

    def _make_batches(self) -> list[np.ndarray]:
        order = np.arange(len(self.pairs))
        if self.shuffle:
            self.rng.shuffle(order)
        if not self.mask_padding:
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        batches = []
        pool_size = self.batch_size * POOL_BATCHES
        for start in range(0, len(order), pool_size):
            pool = order[start : start + pool_size]
            pool = pool[np.argsort(self.target_lengths[pool], kind="stable")]
            batches += [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        if self.shuffle:
            self.rng.shuffle(batches)
        return batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int):
        pairs, rows = self.pairs, self.batches[index]
        real = np.ones(len(rows), dtype=np.float32)  # (b,) 0 for rows that only fill a batch
        filler = -len(rows) % self.replicas.count
        if filler:
            rows = np.concatenate([rows, np.repeat(rows[:1], filler)])
            real = np.concatenate([real, np.zeros(filler, dtype=np.float32)])
        source_steps = target_steps = None  # unmasked: the full width, as the example trains
        if self.mask_padding:
            # From the whole batch, so that every process of a multi-host run cuts the same steps.
            source_steps = _fit(self.source_lengths[rows].max(), self.source_widths)
            target_steps = _fit(self.target_lengths[rows].max(), self.target_widths)
        # (b, source steps), (b, target steps), (b, target steps)
        encoder_inputs, decoder_inputs, targets = pairs.padded(rows, source_steps, target_steps)
        if self.replicas.processes > 1:
            mine = slice(self.replicas.process, None, self.replicas.processes)
            encoder_inputs, decoder_inputs = encoder_inputs[mine], decoder_inputs[mine]
            targets, real = targets[mine], real[mine]
        if self.mask_padding or self.replicas.count > 1:
            weights = real[:, None] * (
                (targets != PAD_ID) if self.mask_padding else np.ones(targets.shape)
            )
            return (encoder_inputs, decoder_inputs), targets, weights.astype(np.float32)  # (b, t)
        return (encoder_inputs, decoder_inputs), targets

    def get_state(self) -> dict:
        """The shuffling state (for checkpoints): the RNG and this epoch's batches."""
        return {
            "bit_generator": self.rng.bit_generator.state,
            "batches": [rows.tolist() for rows in self.batches],
        }

    def set_state(self, state: dict) -> None:
        """Restore `get_state()`, so a resumed run draws the batches it would have drawn."""
        self.rng.bit_generator.state = state["bit_generator"]
        self.batches = [np.asarray(rows, dtype=np.int64) for rows in state["batches"]]

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.batches = self._make_batches()


def _bucket(steps: int, limit: int) -> int:
    """Round up to a multiple of STEP_BUCKET, at most `limit`."""
    return int(min(limit, -(-max(int(steps), 1) // STEP_BUCKET) * STEP_BUCKET))


def _fit(steps: int, widths: tuple[int, ...]) -> int:
    """The narrowest of `widths` (ascending) that holds `steps`."""
    return next(width for width in widths if width >= steps)


def bucket_widths(
    longest: list[int], limit: int, tolerance: float = WIDTH_TOLERANCE
) -> tuple[int, ...]:
    """The widths batches are padded to, on one side: the fewest multiples of STEP_BUCKET
    (and `limit`, always among them) that cost at most `tolerance` more padded steps than
    rounding every batch up to its own multiple.

    Each width is a compiled program, several seconds of compiling on a CPU: the few batches
    of the longest sentences then share a width, instead of compiling one each.

    Args:
        longest: the longest row of each batch, in steps.
        limit: the full width (the longest sequence of the data).

    Example:
        >>> bucket_widths([10, 12, 20, 20, 20, 41, 50], limit=59)
        (16, 24, 48, 59)
    """
    needed = [_bucket(steps, limit) for steps in longest]
    candidates = sorted({*needed, limit})  # (m,) ascending, the last is `limit`
    counts = np.array([needed.count(width) for width in candidates])
    allowed = (1 + tolerance) * sum(needed)
    # cost[k][i]: the fewest steps padding batches up to candidates[i] with k + 1 widths, the
    # widest of them candidates[i]; last[k][i] the width before it (-1: none).
    m = len(candidates)
    cumulative = np.concatenate([[0], np.cumsum(counts)])
    cost = [[candidates[i] * cumulative[i + 1] for i in range(m)]]
    last = [[-1] * m]
    while cost[-1][-1] > allowed:
        row, back = [np.inf] * m, [-1] * m
        for i in range(m):
            for j in range(i):
                value = cost[-1][j] + candidates[i] * (cumulative[i + 1] - cumulative[j + 1])
                if value < row[i]:
                    row[i], back[i] = value, j
        cost.append(row)
        last.append(back)
    widths, i = [], m - 1
    for k in range(len(cost) - 1, -1, -1):
        widths.append(candidates[i])
        i = last[k][i]
    return tuple(int(width) for width in reversed(widths))
