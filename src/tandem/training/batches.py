"""Batches for the training model: id arrays, expanded to one-hots a batch at a time if needed."""

from __future__ import annotations

import keras
import numpy as np

from tandem.data.batching import EncodedPairs
from tandem.data.vocabulary import PAD_ID


class OneHotBatches(keras.utils.PyDataset):
    """Teacher-forcing batches for the training model, never the whole corpus expanded.

    The example one-hot encodes the whole corpus up front; the products are the same when
    each batch is expanded on the way in (`one_hot=True`, the seed's inputs), and memory stays
    at the size of the id arrays. Embedding models read the ids directly. Targets stay integer
    ids (sparse cross-entropy equals categorical cross-entropy on one-hot targets).

    Args:
        pairs: encoded pairs.
        num_encoder_tokens: source one-hot width.
        num_decoder_tokens: target one-hot width.
        batch_size: pairs per batch (the last batch may be smaller, as in `fit`).
        shuffle: reshuffle the order every epoch, as `fit(shuffle=True)` does.
        seed: seed of the shuffling.
        one_hot: feed one-hot vectors (the seed's graphs) instead of ids.
        mask_padding: add sample weights that are 0 at padded target steps, so padding does
            not count in the loss or the metrics.
    """

    def __init__(
        self,
        pairs: EncodedPairs,
        num_encoder_tokens: int,
        num_decoder_tokens: int,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        *,
        one_hot: bool = True,
        mask_padding: bool = False,
    ):
        super().__init__()
        self.pairs = pairs
        self.num_encoder_tokens = num_encoder_tokens
        self.num_decoder_tokens = num_decoder_tokens
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.one_hot = one_hot
        self.mask_padding = mask_padding
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(pairs))
        if shuffle:
            self.rng.shuffle(self.order)

    def __len__(self) -> int:
        return -(-len(self.pairs) // self.batch_size)

    def __getitem__(self, index: int):
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        batch = self.pairs.take(rows)
        encoder_inputs, decoder_inputs = batch.source_ids, batch.decoder_input_ids  # (b, steps)
        if self.one_hot:
            encoder_inputs = _one_hot(encoder_inputs, self.num_encoder_tokens)  # (b, s, S)
            decoder_inputs = _one_hot(decoder_inputs, self.num_decoder_tokens)  # (b, t, T)
        targets = batch.decoder_target_ids  # (b, t)
        if self.mask_padding:
            weights = (targets != PAD_ID).astype(np.float32)  # (b, t)
            return (encoder_inputs, decoder_inputs), targets, weights
        return (encoder_inputs, decoder_inputs), targets

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.rng.shuffle(self.order)


def _one_hot(ids: np.ndarray, width: int) -> np.ndarray:
    return np.eye(width, dtype=np.float32)[ids]
