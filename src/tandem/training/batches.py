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
            source_steps = _bucket(self.source_lengths[rows].max(), pairs.max_encoder_seq_length)
            target_steps = _bucket(self.target_lengths[rows].max(), pairs.max_decoder_seq_length)
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
