"""Validation by decoding: chrF (or WER/PER for word targets) of greedy output during training,
the decoded pairs written to `validations/epoch-N.tsv` and a few of them shown."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from tandem.data.vocabulary import Vocabulary
from tandem.decoding import compile_stateless, greedy_search
from tandem.evaluation.metrics import error_rates, score
from tandem.files import write_tsv_atomically
from tandem.model_dir import validation_path
from tandem.models import EncoderDecoder

BATCH_SIZE = 256
EXAMPLES = 3  # the first validation sources, shown at every scoring (and drawn, with attention)
TSV_HEADER = ("source", "reference", "hypothesis")


class ValidationScore(keras.callbacks.Callback):
    """Every `every` epochs, greedy-decode the validation sources and log their score.

    Logs `val_chrf` (and `val_bleu`), or `val_wer` and `val_per` when the target tokens are
    words (phonemes). Decoding reads the current weights through `compile_stateless`, so the
    search is compiled once for the whole run. With `model_dir`, each scoring writes
    `validations/epoch-N.tsv`: one row per validation pair (source, reference, the source's
    hypothesis), escaped as `tandem translate --format tsv` escapes; with `verbose`, the first
    EXAMPLES sources are printed with their references and hypotheses, beside Keras's progress.

    Args:
        model: the layer owner being trained.
        sources: the validation sources, as text (one per unique source).
        source_ids: the same sources (n, max_encoder_seq_length), as the encoder reads them.
        references: for each source, all its validation targets.
        target_vocab: turns output ids into text.
        every: score after every `every`-th epoch.
        model_dir: where the decoded pairs go; None writes none.
        verbose: print the examples at each scoring.
    """

    def __init__(
        self,
        model: EncoderDecoder,
        sources: Sequence[str],
        source_ids: np.ndarray,
        references: Sequence[Sequence[str]],
        target_vocab: Vocabulary,
        every: int,
        model_dir: str | Path | None = None,
        verbose: bool = False,
    ):
        super().__init__()
        self.seq2seq = model
        self.sources = sources
        self.source_ids = source_ids
        self.references = references
        self.target_vocab = target_vocab
        self.every = every
        self.model_dir = model_dir
        self.verbose = verbose
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
        if self.model_dir is not None:
            self.write_pairs(epoch + 1, hypotheses)
        if self.verbose:
            print(self.examples(epoch + 1, hypotheses), flush=True)

    def write_pairs(self, epoch: int, hypotheses: Sequence[str]) -> None:
        """validations/epoch-N.tsv: a row per validation pair, the pairs of a source together."""
        path = validation_path(self.model_dir, epoch)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [
            (source, reference, hypothesis)
            for source, references, hypothesis in zip(
                self.sources, self.references, hypotheses, strict=True
            )
            for reference in references
        ]
        write_tsv_atomically(path, TSV_HEADER, rows)

    def examples(self, epoch: int, hypotheses: Sequence[str]) -> str:
        """The first EXAMPLES validation sources, their references and hypotheses, as lines."""
        lines = [f"Epoch {epoch}: validation examples"]
        for index, hypothesis in enumerate(hypotheses[:EXAMPLES]):
            lines += [
                f"  source     {self.sources[index]!r}",
                f"  reference  {' | '.join(map(repr, self.references[index]))}",
                f"  hypothesis {hypothesis!r}",
            ]
        return "\n".join(lines)
