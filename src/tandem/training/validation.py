"""Validation by decoding: chrF (or WER/PER for word targets) of greedy output during training."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from tandem.data.vocabulary import Vocabulary
from tandem.decoding import compile_stateless, greedy_search
from tandem.evaluation.metrics import error_rates, score
from tandem.models import EncoderDecoder

BATCH_SIZE = 256


class ValidationScore(keras.callbacks.Callback):
    """Every `every` epochs, greedy-decode the validation sources and log their score.

    Logs `val_chrf` (and `val_bleu`), or `val_wer` and `val_per` when the target tokens are
    words (phonemes). Decoding reads the current weights through `compile_stateless`, so the
    search is compiled once for the whole run.

    Args:
        model: the layer owner being trained.
        source_ids: validation sources (n, max_encoder_seq_length), as the encoder reads them.
        references: for each source, all its validation targets.
        target_vocab: turns output ids into text.
        every: score after every `every`-th epoch.
    """

    def __init__(
        self,
        model: EncoderDecoder,
        source_ids: np.ndarray,
        references: Sequence[Sequence[str]],
        target_vocab: Vocabulary,
        every: int,
    ):
        super().__init__()
        self.seq2seq = model
        self.source_ids = source_ids
        self.references = references
        self.target_vocab = target_vocab
        self.every = every
        max_length = model.dims.max_decoder_seq_length

        def decode(ids):  # (BATCH_SIZE, steps) -> (BATCH_SIZE, max_length)
            state = model.encode(ids, max_length)
            return greedy_search(model.step, state, BATCH_SIZE, max_length)[0]

        self.decode = compile_stateless(decode, model.variables)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or (epoch + 1) % self.every:
            return
        hypotheses = []
        for start in range(0, len(self.source_ids), BATCH_SIZE):
            batch = np.zeros((BATCH_SIZE, self.source_ids.shape[1]), dtype=np.int32)
            rows = self.source_ids[start : start + BATCH_SIZE]
            batch[: len(rows)] = rows
            output = np.asarray(self.decode(batch))[: len(rows)]
            hypotheses += [self.target_vocab.decode(ids) for ids in output]
        if self.target_vocab.kind == "word":
            rates = error_rates(hypotheses, self.references)
            logs["val_wer"], logs["val_per"] = rates["wer"], rates["per"]
        else:
            scores = score(hypotheses, self.references)
            logs["val_chrf"], logs["val_bleu"] = scores["chrf"], scores["bleu"]
