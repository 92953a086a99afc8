"""Train a model on parallel data into a model directory, resumable from its checkpoints."""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from tandem.config import Config, ConfigError
from tandem.data.batching import EncodedPairs, encode_pairs, encode_sources
from tandem.data.reading import group_references, text_problem
from tandem.data.vocabulary import Vocabulary
from tandem.errors import TandemError
from tandem.files import training_lock
from tandem.model_dir import (
    HISTORY_FILE,
    load_model_dir,
    save_model_dir,
    start_model_dir,
    write_history,
)
from tandem.models import ModelDims, build_model
from tandem.training.batches import TrainingBatches
from tandem.training.callbacks import (
    Checkpointer,
    EpochTimer,
    LearningRateLogger,
    StopOnInterrupt,
)
from tandem.training.checkpoints import (
    BEST,
    LAST,
    Checkpoint,
    average_snapshots,
    checkpoint_root,
    find_checkpoint,
    restore_training_model,
    snapshot_path,
)
from tandem.training.devices import Replicas, data_parallel
from tandem.training.losses import training_loss
from tandem.training.resume import (
    check_fresh_run,
    clear_run,
    data_fingerprint,
    open_resumed_run,
)
from tandem.training.schedules import InverseSqrt
from tandem.training.validation import ValidationScore

__all__ = [
    "EpochTimer",
    "TrainResult",
    "TrainingDiverged",
    "TrainingInterrupted",
    "average_model_dir",
    "train",
]


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    model_dir: Path
    history: list[dict]  # one row per epoch, as in history.csv (a resumed run's earlier ones too)
    train_pairs: int
    validation_pairs: int
    filtered_pairs: int  # dropped by max_source_length / max_target_length
    initial_epoch: int = 0  # epochs done before this call (resumed runs)
    final_epoch: int = 0  # the epoch (1-based) whose weights the saved model holds
    averaged_epochs: tuple[int, ...] = ()  # with train.average_last: the epochs averaged

    @property
    def seconds_per_epoch(self) -> float:
        return sum(row["seconds"] for row in self.history) / max(len(self.history), 1)


class TrainingInterrupted(TandemError):
    """Ctrl-C during training; the last checkpoint is kept for `train(..., resume=True)`.

    Attributes:
        what: what happened and what was kept, without the advice on resuming.
        resumable: whether a checkpoint was kept to resume from.
    """

    exit_code = 130  # 128 + SIGINT; a SIGTERM gives 143, as shells report it

    def __init__(self, what: str, advice: str, resumable: bool, signum: int | None = None):
        super().__init__(f"{what}; {advice}")
        self.what, self.resumable = what, resumable
        if signum is not None:
            self.exit_code = 128 + signum


class TrainingDiverged(TandemError):
    """The loss became nan or infinite; the last good checkpoint is kept."""


def keep_within_lengths(encoded: EncodedPairs, config: Config) -> np.ndarray:
    """(pairs,) bool: within `data.max_source_length` / `data.max_target_length` tokens."""
    max_source, max_target = config.data.max_source_length, config.data.max_target_length
    keep = np.ones(len(encoded), dtype=bool)
    if max_source is not None:
        keep &= encoded.source_lengths <= max_source
    if max_target is not None:
        keep &= encoded.target_lengths - 2 <= max_target  # without start and end
    return keep


def train(
    pairs: Sequence[tuple[str, str]],
    config: Config,
    output_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    verbose: int = 2,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    devices: int | str | None = None,
) -> TrainResult:
    """Train as the Keras example does, checkpointing every epoch, and save to `output_dir`.

    Every epoch ends with an atomic checkpoint in `output_dir/checkpoints/` (see
    `tandem.training.checkpoints`). The saved model holds the best epoch's weights (lowest
    val_loss, or loss without validation) when early stopping is on (`train.patience`), as
    Keras's `restore_best_weights` does, and the last epoch's otherwise; with
    `train.average_last` N, the mean of the weights of the N epochs ending at that one.

    Args:
        pairs: (source, target) sentence pairs, in file order; `config.data.max_samples`
            keeps the first N. (Reading applies it too, and `data.skip_bad_lines`: see
            `tandem.data.reading.read_pairs`; a bad pair given here is refused.)
        config: the resolved configuration (written into the model directory).
        output_dir: where the model directory goes (created; must be empty or a model dir).
        resume: continue the unfinished run in `output_dir` from its last checkpoint; `config`
            and `pairs` must be the run's own.
        overwrite: start over in an `output_dir` that holds a trained model or an
            unfinished run (both are refused otherwise).
        verbose: Keras progress: 0 silent, 1 bar, 2 one line per epoch.
        callbacks: extra Keras callbacks.
        devices: data-parallel training on this many devices ("all": every one JAX sees);
            None trains on one device (see `tandem.training.devices`).

    Returns:
        TrainResult with the per-epoch history.

    Raises:
        TrainingInterrupted: Ctrl-C; the message names the checkpoint kept.
        TrainingDiverged: a nan or infinite loss; the last good checkpoint is kept.
        TandemError: bad data, or nothing (or something else) to resume.
        TypeError: `pairs`, `config` or `devices` of the wrong kind.

    Example:
        >>> train(pairs, Config(), "models/fra")  # doctest: +SKIP
        >>> train(pairs, Config(), "models/fra", resume=True)  # after a kill  # doctest: +SKIP
    """
    pairs = _check_arguments(pairs, config, callbacks)
    if resume and overwrite:
        raise TandemError(
            "resume continues the run in output_dir, overwrite replaces it: choose one"
        )
    if not resume:
        ignored = config.ignored_settings()
        if ignored:
            raise ConfigError("; ".join(ignored))
    with (
        data_parallel(devices, config.train.batch_size) as replicas,
        # One process trains in a directory at a time: two would replace each other's model.
        training_lock(Path(output_dir), create=not resume),
    ):
        return _train(
            pairs, config, Path(output_dir), resume, overwrite, verbose, callbacks, replicas
        )


def _check_arguments(pairs, config, callbacks) -> Sequence[tuple[str, str]]:
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


def _train(
    pairs: Sequence[tuple[str, str]],
    config: Config,
    output_dir: Path,
    resume: bool,
    overwrite: bool,
    verbose: int,
    callbacks: Sequence[keras.callbacks.Callback],
    replicas: Replicas,
) -> TrainResult:
    """`train`, inside the device context; `replicas` says how the batches are split."""
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
    # Every pair is tokenized once, into unpadded id arrays (see tandem.data.batching).
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
    batch_size = config.train.batch_size
    options = {"mask_padding": config.model.mask_padding, "replicas": replicas}
    train_batches = TrainingBatches(
        encoded.take(slice(0, n_train)), batch_size, seed=config.train.seed, **options
    )
    validation_batches = (
        TrainingBatches(encoded.take(slice(n_train, None)), batch_size, shuffle=False, **options)
        if n_validation
        else None
    )

    keras.utils.set_random_seed(config.train.seed)
    model = build_model(config.model, dims)
    model.fit_model.compile(
        optimizer=_optimizer(config),
        loss=training_loss(config.train.label_smoothing),
        # Weighted: with masking, padded steps (weight 0) count in neither loss nor accuracy.
        weighted_metrics=["accuracy"],
    )
    if checkpoint is not None:
        restore_training_model(model.fit_model, checkpoint)

    monitor = "val_loss" if validation_batches else "loss"
    early_stopping = lr_plateau = None
    if config.train.patience is not None:
        # Best weights come back from checkpoints/best, which survives a resume.
        early_stopping = keras.callbacks.EarlyStopping(
            monitor=monitor, patience=config.train.patience, restore_best_weights=False
        )
    if config.train.lr_schedule == "plateau":
        lr_plateau = keras.callbacks.ReduceLROnPlateau(
            monitor=monitor,
            factor=config.train.lr_factor,
            patience=config.train.lr_patience,
            verbose=1 if verbose else 0,
        )
    checkpointer = Checkpointer(
        output_dir,
        train_batches,
        monitor,
        config.train.epochs,
        resumed=checkpoint,
        stateful={"early_stopping": early_stopping, "lr_plateau": lr_plateau},
        # Enough recent epochs that the best one and the average_last - 1 before it are kept.
        snapshots=config.train.average_last + (config.train.patience or 0)
        if config.train.average_last
        else 0,
    )
    stop_on_interrupt = StopOnInterrupt()
    # Order matters: the checkpointer saves what the schedule and early stopping decided.
    all_callbacks = [
        EpochTimer(),
        LearningRateLogger(),
        *[callback for callback in (lr_plateau, early_stopping) if callback is not None],
        *_validation_scores(config, model, kept[n_train:], source_vocab, target_vocab),
        checkpointer,
        # After the checkpointer: a callback's epoch N begins once epoch N - 1 is checkpointed.
        *callbacks,
        stop_on_interrupt,  # last: a Ctrl-C stops the run once the others have done their part
    ]
    initial_epoch = checkpoint.epoch if checkpoint else 0
    if verbose:
        print(
            f"training on {n_train} pairs, validating on {n_validation}; "
            f"{dims.num_encoder_tokens} source and {dims.num_decoder_tokens} target tokens"
            + (
                f"; left out {len(pairs) - len(kept)} pairs over the length limits"
                if len(kept) < len(pairs)
                else ""
            )
            + (f"; resuming after epoch {initial_epoch}" if checkpoint else ""),
            file=sys.stderr,
        )
    if initial_epoch < config.train.epochs and not checkpointer.stopped_early:
        try:
            with stop_on_interrupt:
                model.fit_model.fit(
                    train_batches,
                    validation_data=validation_batches,
                    epochs=config.train.epochs,
                    initial_epoch=initial_epoch,
                    callbacks=all_callbacks,
                    verbose=verbose,
                )
        except KeyboardInterrupt:
            checkpointer.draw_curve()
            raise _interrupted(
                output_dir, checkpointer, initial_epoch, stop_on_interrupt.signum
            ) from None
    if checkpointer.diverged is not None:
        raise _diverged(output_dir, checkpointer)

    final_epoch = checkpointer.last_epoch
    best = find_checkpoint(output_dir, BEST) if early_stopping is not None else None
    if best is not None:
        model.fit_model.load_weights(best.model_path)
        final_epoch = best.epoch
    averaged: list[int] = []
    if config.train.average_last:
        averaged = average_snapshots(
            model.fit_model, output_dir, final_epoch, config.train.average_last
        )
        if verbose:
            print(f"saved the average of the weights of epochs {averaged}", file=sys.stderr)
    write_history(output_dir / HISTORY_FILE, checkpointer.history)
    checkpointer.draw_curve()
    save_model_dir(output_dir, model, source_vocab, target_vocab, config, train_data)
    return TrainResult(
        model_dir=output_dir,
        history=checkpointer.history,
        train_pairs=n_train,
        validation_pairs=n_validation,
        filtered_pairs=len(pairs) - len(kept),
        initial_epoch=initial_epoch,
        final_epoch=final_epoch,
        averaged_epochs=tuple(averaged),
    )


def average_model_dir(model_dir: str | Path, last: int) -> tuple[int, ...]:
    """Save in `model_dir` the mean of the weights of the `last` epochs ending at the kept one.

    The kept epoch is the one training kept: the best with early stopping (`train.patience`),
    else the last. The window can be chosen after training (on a dev set, say) among the
    epochs whose snapshots `train.average_last` kept in `checkpoints/epochs/`; a window with
    an epoch that has none is refused (training, by contrast, leaves out the epochs from
    before averaging was switched on). The model and `train.average_last` in config.json are
    rewritten atomically; the checkpoints and snapshots stay, so another window can follow.

    Returns:
        The epochs averaged, in order.

    Raises:
        TandemError: `last` below 1, an unfinished or foreign directory, or an epoch of the
            window without a snapshot.
    """
    if last < 1:
        raise TandemError(f"the number of epochs to average must be at least 1, got {last}")
    with training_lock(Path(model_dir), create=False):
        return _average_model_dir(model_dir, last)


def _average_model_dir(model_dir: str | Path, last: int) -> tuple[int, ...]:
    loaded = load_model_dir(model_dir)
    kept = None
    if loaded.config.train.patience is not None:
        kept = find_checkpoint(loaded.path, BEST)
    kept = kept or find_checkpoint(loaded.path, LAST)
    if kept is None:
        raise TandemError(f"{loaded.path}: no checkpoint says which epoch training kept")
    first = max(kept.epoch - last + 1, 1)
    window = range(first, kept.epoch + 1)
    missing = [e for e in window if not snapshot_path(loaded.path, e).exists()]
    folder = snapshot_path(loaded.path, kept.epoch).parent
    if len(missing) == len(window):
        raise TandemError(
            f"{loaded.path}: no weight snapshot of epochs {first}-{kept.epoch} in {folder} "
            "(train with --average-last to keep them)"
        )
    if missing:
        # Asked for after training, a mean of fewer epochs than asked is refused, not made.
        kept_run = next(n for n in range(1, len(window) + 1) if kept.epoch - n + 1 in missing) - 1
        raise TandemError(
            f"{loaded.path}: no weight snapshot of epoch{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(str, missing))} in {folder}, so the last {last} epochs cannot be "
            f"averaged; the snapshots kept allow at most {kept_run}"
            if kept_run
            else f"{loaded.path}: no weight snapshot of epoch {kept.epoch}, the kept one, in {folder}"
        )
    averaged = average_snapshots(loaded.model.fit_model, loaded.path, kept.epoch, last)
    # A window reaching back before epoch 1 is all the epochs: recorded as such.
    config = loaded.config.replace("train", average_last=min(last, kept.epoch))
    save_model_dir(
        loaded.path,
        loaded.model,
        loaded.source_vocab,
        loaded.target_vocab,
        config,
        loaded.manifest.get("train_data"),
    )
    return tuple(averaged)


def _interrupted(
    output_dir: Path, checkpointer: Checkpointer, initial_epoch: int, signum: int | None
) -> TrainingInterrupted:
    epoch = getattr(checkpointer, "epoch", initial_epoch) + 1
    kept = find_checkpoint(output_dir, LAST)
    if kept is None:
        return TrainingInterrupted(
            f"interrupted in epoch {epoch}, before the first checkpoint",
            "nothing to resume, train again to start over",
            resumable=False,
            signum=signum,
        )
    when = f"after epoch {kept.epoch}" if kept.epoch >= epoch else f"in epoch {epoch}"
    return TrainingInterrupted(
        f"interrupted {when}; kept the checkpoint of epoch {kept.epoch} in "
        f"{checkpoint_root(output_dir) / LAST}",
        "call train again with resume=True to continue",
        resumable=True,
        signum=signum,
    )


def _diverged(output_dir: Path, checkpointer: Checkpointer) -> TrainingDiverged:
    epoch, value = checkpointer.diverged
    kind = "nan" if math.isnan(value) else "inf"
    last = find_checkpoint(output_dir, LAST)
    where = (
        f"last good checkpoint: epoch {last.epoch} in {checkpoint_root(output_dir) / LAST}"
        if last is not None
        else "no epoch ended with a finite loss, so there is no checkpoint"
    )
    return TrainingDiverged(f"loss became {kind} at epoch {epoch}; {where}")


def _optimizer(config: Config) -> keras.optimizers.Optimizer:
    kinds = {
        "rmsprop": keras.optimizers.RMSprop,
        "adam": keras.optimizers.Adam,
        "sgd": keras.optimizers.SGD,
    }
    options = {}
    if config.train.learning_rate is not None:
        options["learning_rate"] = config.train.learning_rate
    if config.train.lr_schedule == "inverse_sqrt":
        peak = options.get("learning_rate", kinds[config.train.optimizer]().learning_rate)
        options["learning_rate"] = InverseSqrt(float(peak), config.train.warmup_steps)
    if config.train.optimizer == "adam":
        options["beta_2"] = config.train.adam_beta_2
    if config.train.gradient_clip_norm is not None:
        options["clipnorm"] = config.train.gradient_clip_norm
    return kinds[config.train.optimizer](**options)


def _validation_scores(config, model, validation_pairs, source_vocab, target_vocab) -> list:
    """The decoding-based validation callback, when asked for and there is validation data."""
    if config.train.score_every is None or not validation_pairs:
        return []
    grouped = group_references(validation_pairs)
    source_ids, _ = encode_sources(
        [source for source, _ in grouped], source_vocab, model.dims.max_encoder_seq_length
    )
    references = [refs for _, refs in grouped]
    return [ValidationScore(model, source_ids, references, target_vocab, config.train.score_every)]
