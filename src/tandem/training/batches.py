"""Batches for the training model: id arrays one-hot encoded a batch at a time."""

from __future__ import annotations

import keras
import numpy as np

from tandem.data.batching import EncodedPairs


class OneHotBatches(keras.utils.PyDataset):
    """Feeds the seed graphs their one-hot inputs without holding the one-hot corpus.

    The example one-hot encodes the whole corpus up front; the products are the same when
    each batch is expanded on the way in, and memory stays at the size of the id arrays.
    Targets stay integer ids (sparse cross-entropy equals categorical on one-hot targets).

    Args:
        pairs: encoded pairs.
        num_encoder_tokens: source one-hot width.
        num_decoder_tokens: target one-hot width.
        batch_size: pairs per batch (the last batch may be smaller, as in `fit`).
        shuffle: reshuffle the order every epoch, as `fit(shuffle=True)` does.
        seed: seed of the shuffling.
    """

    def __init__(
        self,
        pairs: EncodedPairs,
        num_encoder_tokens: int,
        num_decoder_tokens: int,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        self.pairs = pairs
        self.num_encoder_tokens = num_encoder_tokens
        self.num_decoder_tokens = num_decoder_tokens
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(pairs))
        if shuffle:
            self.rng.shuffle(self.order)

    def __len__(self) -> int:
        return -(-len(self.pairs) // self.batch_size)

    def __getitem__(self, index: int):
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        batch = self.pairs.take(rows)
        encoder_inputs = _one_hot(batch.source_ids, self.num_encoder_tokens)  # (b, s, S)
        decoder_inputs = _one_hot(batch.decoder_input_ids, self.num_decoder_tokens)  # (b, t, T)
        return (encoder_inputs, decoder_inputs), batch.decoder_target_ids  # targets (b, t)

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.rng.shuffle(self.order)


def _one_hot(ids: np.ndarray, width: int) -> np.ndarray:
    return np.eye(width, dtype=np.float32)[ids]
