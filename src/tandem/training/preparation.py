"""Preparing a run: the arguments checked, the vocabularies, the data encoded and split.

`prepare_run` opens the model directory (a fresh run, or the one resumed), builds or reads the
vocabularies, drops pairs over the length limits, holds out the validation pairs and makes
the batches; its `TrainingRun` is what the later steps of `tandem.training.trainer` share.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from tandem.config import Config
from tandem.data.batching import EncodedPairs, encode_pairs
from tandem.data.reading import text_problem
from tandem.data.vocabulary import Vocabulary
from tandem.errors import TandemError
from tandem.model_dir import start_model_dir
from tandem.models import ModelDims
from tandem.training.batches import TrainingBatches
from tandem.training.checkpoints import Checkpoint
from tandem.training.devices import Replicas
from tandem.training.resume import (
    check_fresh_run,
    clear_run,
    data_fingerprint,
    open_resumed_run,
)

__all__ = ["TrainPlan", "TrainingRun", "check_arguments", "keep_within_lengths", "prepare_run"]


@dataclass(frozen=True)
class TrainPlan:
    """What a run is about to train on: `train` hands it to `on_start` before the first epoch."""

    train_pairs: int
    validation_pairs: int
    filtered_pairs: int  # dropped by max_source_length / max_target_length
    source_tokens: int  # vocabulary sizes
    target_tokens: int
    resumed_after: int | None  # the epoch a resumed run continues after; None when fresh

    def summary(self) -> str:
        """One line, as `tandem train` writes it to stderr."""
        return (
            f"training on {self.train_pairs} pairs, validating on {self.validation_pairs}; "
            f"{self.source_tokens} source and {self.target_tokens} target tokens"
            + (
                f"; left out {self.filtered_pairs} pairs over the length limits"
                if self.filtered_pairs
                else ""
            )
            + (
                f"; resuming after epoch {self.resumed_after}"
                if self.resumed_after is not None
                else ""
            )
        )


@dataclass(frozen=True)
class TrainingRun:
    """What the steps of training share: the run's directory, vocabularies and batches."""

    output_dir: Path
    train_data: dict  # the data's fingerprint (see `tandem.training.resume.data_fingerprint`)
    checkpoint: Checkpoint | None  # the one a resumed run continues from
    source_vocab: Vocabulary
    target_vocab: Vocabulary
    dims: ModelDims
    kept: Sequence[tuple[str, str]]  # within the length limits: training, then validation
    filtered_pairs: int
    n_train: int
    train_batches: TrainingBatches
    validation_batches: TrainingBatches | None

    @property
    def initial_epoch(self) -> int:
        """Epochs done before this call (a resumed run's)."""
        return self.checkpoint.epoch if self.checkpoint else 0

    def plan(self) -> TrainPlan:
        """What the run is about to train on, for `train`'s `on_start`."""
        return TrainPlan(
            train_pairs=self.n_train,
            validation_pairs=len(self.kept) - self.n_train,
            filtered_pairs=self.filtered_pairs,
            source_tokens=self.dims.num_encoder_tokens,
            target_tokens=self.dims.num_decoder_tokens,
            resumed_after=self.checkpoint.epoch if self.checkpoint else None,
        )


def check_arguments(pairs, config, callbacks) -> Sequence[tuple[str, str]]:
    """What `read_pairs` and the CLI's parsing guarantee, checked for API callers before
    anything is written; returns the pairs that `data.max_samples` keeps (the first N, as
    reading keeps those of the first N valid lines)."""
    if keras.backend.backend() == "numpy":
        raise TandemError(
            "the numpy backend cannot train (Keras has no training for it): train with "
            "KERAS_BACKEND=jax (the default), torch or tensorflow; the model it writes "
            "translates on numpy"
        )
    if not isinstance(config, Config):
        raise TypeError(
            f"config must be a tandem.config.Config, got {type(config).__name__} "
            "(Config.from_dict builds one from dicts)"
        )
    for index, callback in enumerate(callbacks):
        if not isinstance(callback, keras.callbacks.Callback):
            raise TypeError(
                f"callbacks[{index}] must be a keras.callbacks.Callback, got {callback!r}"
            )
    if isinstance(pairs, str | bytes):
        raise TypeError("pairs must be a sequence of (source, target) pairs, not one string")
    if not pairs:
        raise TandemError("no sentence pairs to train on")
    if config.data.max_samples is not None:
        pairs = pairs[: config.data.max_samples]
    for index, pair in enumerate(pairs):
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise TypeError(f"pairs[{index}] must be a (source, target) pair, got {pair!r}")
        for side, text in zip(("source", "target"), pair, strict=True):
            if not isinstance(text, str):
                raise TypeError(f"pairs[{index}]: the {side} must be a string, got {text!r}")
            if not text.strip():
                raise TandemError(f"pairs[{index}]: empty {side} sentence")
            problem = text_problem(text)
            if problem:  # a target's line break would come out as two lines of translation
                raise TandemError(f"pairs[{index}]: the {side} sentence holds {problem}")
    return pairs


def prepare_run(
    pairs: Sequence[tuple[str, str]],
    config: Config,
    output_dir: Path,
    resume: bool,
    overwrite: bool,
    replicas: Replicas,
) -> TrainingRun:
    """Open the run (resumed, or fresh with new vocabularies and a started model directory),
    encode the pairs within the length limits, hold out the validation ones and batch them."""
    train_data = data_fingerprint(pairs)
    checkpoint: Checkpoint | None = None
    if resume:
        checkpoint, source_vocab, target_vocab, manifest = open_resumed_run(
            output_dir, config, train_data
        )
    else:
        # An earlier run here is deleted only once the new run's data have passed their
        # checks (below), so a run refused for its data leaves the old model as it was.
        output_dir = check_fresh_run(output_dir, overwrite)
        # Vocabularies first: subword lengths are only known once SentencePiece is trained.
        source_vocab = Vocabulary.build(
            [s for s, _ in pairs],
            config.data.source_tokens,
            spm_vocab_size=config.data.spm_vocab_size,
            side="source",
        )
        target_vocab = Vocabulary.build(
            [t for _, t in pairs],
            config.data.target_tokens,
            spm_vocab_size=config.data.spm_vocab_size,
            side="target",
        )
    encoded, kept, dims = _encode(pairs, config, source_vocab, target_vocab)
    if checkpoint is not None and manifest["dims"] != dims.to_dict():
        raise TandemError(f"{output_dir}: the data give other model sizes than the run's")
    # Keras's validation_split holds out the last fraction, before any shuffling.
    n_validation = int(len(kept) * config.train.validation_split)
    n_train = len(kept) - n_validation
    if n_train < 1:
        raise TandemError("the validation split leaves no training pairs")
    if checkpoint is None:
        clear_run(output_dir)
        start_model_dir(output_dir, dims, source_vocab, target_vocab, config, train_data)
    train_batches, validation_batches = _batches(encoded, n_train, config, replicas)
    return TrainingRun(
        output_dir=output_dir,
        train_data=train_data,
        checkpoint=checkpoint,
        source_vocab=source_vocab,
        target_vocab=target_vocab,
        dims=dims,
        kept=kept,
        filtered_pairs=len(pairs) - len(kept),
        n_train=n_train,
        train_batches=train_batches,
        validation_batches=validation_batches,
    )


def _encode(pairs, config, source_vocab, target_vocab) -> tuple[EncodedPairs, list, ModelDims]:
    """Tokenize every pair once (unpadded id arrays, see `tandem.data.batching`) and keep those
    within the length limits; returns them, the kept pairs, and the model sizes they give."""
    encoded = encode_pairs(pairs, source_vocab, target_vocab)
    keep = keep_within_lengths(encoded, config)
    if not keep.any():
        raise TandemError("no sentence pairs left after the length limits")
    if not keep.all():
        kept = [pair for pair, wanted in zip(pairs, keep, strict=True) if wanted]
        encoded = encoded.take(keep)
    else:
        kept = pairs
    dims = ModelDims(
        num_encoder_tokens=len(source_vocab),
        num_decoder_tokens=len(target_vocab),
        max_encoder_seq_length=int(encoded.source_lengths.max()),
        max_decoder_seq_length=int(encoded.target_lengths.max()),  # with start and end
    )
    encoded = dataclasses.replace(
        encoded,
        max_encoder_seq_length=dims.max_encoder_seq_length,
        max_decoder_seq_length=dims.max_decoder_seq_length,
    )
    return encoded, kept, dims


def _batches(encoded: EncodedPairs, n_train: int, config: Config, replicas: Replicas):
    """The training batches (the first `n_train` pairs, shuffled) and the validation ones."""
    batch_size = config.train.batch_size
    options = {"mask_padding": config.model.mask_padding, "replicas": replicas}
    train_batches = TrainingBatches(
        encoded.take(slice(0, n_train)), batch_size, seed=config.train.seed, **options
    )
    validation_batches = (
        TrainingBatches(encoded.take(slice(n_train, None)), batch_size, shuffle=False, **options)
        if n_train < len(encoded)
        else None
    )
    return train_batches, validation_batches


def keep_within_lengths(encoded: EncodedPairs, config: Config) -> np.ndarray:
    """(pairs,) bool: within `data.max_source_length` / `data.max_target_length` tokens."""
    max_source, max_target = config.data.max_source_length, config.data.max_target_length
    keep = np.ones(len(encoded), dtype=bool)
    if max_source is not None:
        keep &= encoded.source_lengths <= max_source
    if max_target is not None:
        keep &= encoded.target_lengths - 2 <= max_target  # without start and end
    return keep
