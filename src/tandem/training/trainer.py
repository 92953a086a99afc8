"""Train the seed model on parallel data and write a model directory."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras

from tandem.config import Config
from tandem.data.batching import encode_pairs
from tandem.data.vocabulary import Vocabulary
from tandem.errors import TandemError
from tandem.model_dir import prepare_output_dir, read_history, save_model_dir
from tandem.models import ModelDims, Seq2Seq
from tandem.training.batches import OneHotBatches


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    model_dir: Path
    history: list[dict]  # one row per epoch, as in history.csv
    train_pairs: int
    validation_pairs: int
    filtered_pairs: int  # dropped by max_source_length / max_target_length

    @property
    def seconds_per_epoch(self) -> float:
        return sum(row["seconds"] for row in self.history) / max(len(self.history), 1)


class EpochTimer(keras.callbacks.Callback):
    """Adds the epoch's wall time to the logs (and so to history.csv)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["seconds"] = time.perf_counter() - self.start


def filter_by_length(pairs: Sequence[tuple[str, str]], config: Config) -> list[tuple[str, str]]:
    """Drop pairs longer than `data.max_source_length` / `data.max_target_length` tokens."""
    source_vocab = Vocabulary([], config.data.source_tokens)
    target_vocab = Vocabulary([], config.data.target_tokens)
    max_source, max_target = config.data.max_source_length, config.data.max_target_length
    return [
        (source, target)
        for source, target in pairs
        if (max_source is None or len(source_vocab.tokenize(source)) <= max_source)
        and (max_target is None or len(target_vocab.tokenize(target)) <= max_target)
    ]


def train(
    pairs: Sequence[tuple[str, str]],
    config: Config,
    output_dir: str | Path,
    *,
    verbose: int = 2,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> TrainResult:
    """Train the seed model as the Keras example does and save it to `output_dir`.

    Args:
        pairs: (source, target) sentence pairs, in file order.
        config: the resolved configuration (written into the model directory).
        output_dir: where the model directory goes (created; must be empty or a model dir).
        verbose: Keras progress: 0 silent, 1 bar, 2 one line per epoch.
        callbacks: extra Keras callbacks.

    Returns:
        TrainResult with the per-epoch history.
    """
    output_dir = prepare_output_dir(output_dir)
    kept = filter_by_length(pairs, config)
    if not kept:
        raise TandemError("no sentence pairs left after the length limits")
    keras.utils.set_random_seed(config.train.seed)

    source_vocab = Vocabulary.build([s for s, _ in kept], config.data.source_tokens)
    target_vocab = Vocabulary.build([t for _, t in kept], config.data.target_tokens)
    dims = ModelDims(
        num_encoder_tokens=len(source_vocab),
        num_decoder_tokens=len(target_vocab),
        max_encoder_seq_length=max(len(source_vocab.tokenize(s)) for s, _ in kept),
        max_decoder_seq_length=max(len(target_vocab.tokenize(t)) for _, t in kept) + 2,
    )
    encoded = encode_pairs(
        kept, source_vocab, target_vocab, dims.max_encoder_seq_length, dims.max_decoder_seq_length
    )
    # Keras's validation_split holds out the last fraction, before any shuffling.
    n_validation = int(len(kept) * config.train.validation_split)
    n_train = len(kept) - n_validation
    if n_train < 1:
        raise TandemError("the validation split leaves no training pairs")
    batch_args = (dims.num_encoder_tokens, dims.num_decoder_tokens, config.train.batch_size)
    inputs = {
        "one_hot": config.model.inputs == "one_hot",
        "mask_padding": config.model.mask_padding,
    }
    train_batches = OneHotBatches(
        encoded.take(slice(0, n_train)), *batch_args, seed=config.train.seed, **inputs
    )
    validation_batches = (
        OneHotBatches(encoded.take(slice(n_train, None)), *batch_args, shuffle=False, **inputs)
        if n_validation
        else None
    )

    model = Seq2Seq(config.model, dims)
    model.training_model.compile(
        optimizer=_optimizer(config),
        loss="sparse_categorical_crossentropy",
        # Weighted: with masking, padded steps (weight 0) count in neither loss nor accuracy.
        weighted_metrics=["accuracy"],
    )
    history_path = output_dir / "history.csv"
    all_callbacks = [EpochTimer(), keras.callbacks.CSVLogger(str(history_path)), *callbacks]
    if config.train.patience is not None:
        all_callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss" if validation_batches else "loss",
                patience=config.train.patience,
                restore_best_weights=True,
            )
        )
    if verbose:
        print(
            f"training on {n_train} pairs, validating on {n_validation}; "
            f"{dims.num_encoder_tokens} source and {dims.num_decoder_tokens} target tokens",
            file=sys.stderr,
        )
    model.training_model.fit(
        train_batches,
        validation_data=validation_batches,
        epochs=config.train.epochs,
        callbacks=all_callbacks,
        verbose=verbose,
    )
    save_model_dir(output_dir, model, source_vocab, target_vocab, config)
    return TrainResult(
        model_dir=output_dir,
        history=read_history(history_path),
        train_pairs=n_train,
        validation_pairs=n_validation,
        filtered_pairs=len(pairs) - len(kept),
    )


def _optimizer(config: Config) -> keras.optimizers.Optimizer:
    kinds = {
        "rmsprop": keras.optimizers.RMSprop,
        "adam": keras.optimizers.Adam,
        "sgd": keras.optimizers.SGD,
    }
    kind = kinds[config.train.optimizer]
    if config.train.learning_rate is None:
        return kind()
    return kind(learning_rate=config.train.learning_rate)
