"""Train a model on parallel data into a model directory, resumable from its checkpoints.

`train` checks its arguments and takes the device and directory locks; `_train` is the
pipeline: `prepare_run` (vocabularies, encoded and split data, the model directory started,
see `tandem.training.preparation`), `_build_model`, `_wire_callbacks`, `_fit` and `_finish`
(the kept weights saved). Nothing here prints: `TrainPlan` and `TrainResult` say what a run
does and did, for the caller to show.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras

from tandem.config import Config
from tandem.data.batching import encode_sources
from tandem.data.reading import group_references
from tandem.errors import TandemError
from tandem.files import training_lock
from tandem.model_dir import (
    HISTORY_FILE,
    save_model_dir,
    tensorboard_dir,
    write_history,
)
from tandem.models import EncoderDecoder, ModelDims, build_model
from tandem.training.attention_maps import AttentionMaps, has_attention
from tandem.training.averaging import average_model_dir
from tandem.training.callbacks import (
    Checkpointer,
    EpochTimer,
    LearningRateLogger,
    StopOnInterrupt,
    TokensPerSecond,
)
from tandem.training.checkpoints import (
    BEST,
    LAST,
    Checkpoint,
    average_snapshots,
    checkpoint_root,
    find_checkpoint,
    restore_training_model,
)
from tandem.training.devices import Replicas, data_parallel
from tandem.training.losses import PerTokenLoss, token_metrics, training_loss
from tandem.training.preparation import (
    TrainingRun,
    TrainPlan,
    check_arguments,
    prepare_run,
)
from tandem.training.schedules import InverseSqrt
from tandem.training.tensorboard import TensorBoardLogger
from tandem.training.validation import EXAMPLES, ValidationScore

__all__ = [
    "EpochTimer",
    "TrainPlan",
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
    on_start: Callable[[TrainPlan], object] | None = None,
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
        on_start: called with the run's `TrainPlan` once the data are ready, before the
            first epoch (`tandem train` writes `plan.summary()` to stderr).

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
    pairs = check_arguments(pairs, config, callbacks)
    if resume and overwrite:
        raise TandemError(
            "resume continues the run in output_dir, overwrite replaces it: choose one"
        )
    if not resume:
        config.refuse_ignored_settings()
    with (
        data_parallel(devices, config.train.batch_size) as replicas,
        # One process trains in a directory at a time: two would replace each other's model.
        training_lock(Path(output_dir), create=not resume),
    ):
        return _train(
            pairs,
            config,
            Path(output_dir),
            resume,
            overwrite,
            verbose,
            callbacks,
            replicas,
            on_start,
        )


@dataclass(frozen=True)
class _Wiring:
    """The callbacks of one `fit`, and those that `_fit` and `_finish` read."""

    callbacks: list[keras.callbacks.Callback]
    checkpointer: Checkpointer
    stop_on_interrupt: StopOnInterrupt
    tensorboard: TensorBoardLogger | None = None  # closed by `_fit` however `fit` ends


def _train(
    pairs: Sequence[tuple[str, str]],
    config: Config,
    output_dir: Path,
    resume: bool,
    overwrite: bool,
    verbose: int,
    callbacks: Sequence[keras.callbacks.Callback],
    replicas: Replicas,
    on_start: Callable[[TrainPlan], object] | None,
) -> TrainResult:
    """`train`, inside the device context; `replicas` says how the batches are split."""
    run = prepare_run(pairs, config, output_dir, resume, overwrite, replicas)
    model = _build_model(config, run.dims, run.checkpoint)
    wiring = _wire_callbacks(config, run, model, verbose, callbacks)
    if on_start is not None:
        on_start(run.plan())
    _fit(config, run, model, wiring, verbose)
    return _finish(config, run, model, wiring.checkpointer)


def _build_model(config: Config, dims: ModelDims, checkpoint: Checkpoint | None) -> EncoderDecoder:
    """The seeded model, its training graph compiled, restored from `checkpoint` if any."""
    keras.utils.set_random_seed(config.train.seed)
    model = build_model(config.model, dims)
    model.fit_model.compile(
        optimizer=_optimizer(config),
        # Per real target token: with masking, padded steps (weight 0) count in neither the
        # loss nor the accuracy (see tandem.training.losses).
        loss=training_loss(config.train.label_smoothing),
        weighted_metrics=token_metrics(config.train.label_smoothing),
    )
    if checkpoint is not None:
        restore_training_model(model.fit_model, checkpoint)
    return model


def _wire_callbacks(config: Config, run: TrainingRun, model, verbose: int, callbacks) -> _Wiring:
    """The schedule, early stopping, validation scores, the checkpointer and the caller's."""
    monitor = "val_loss" if run.validation_batches else "loss"
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
        run.output_dir,
        run.train_batches,
        monitor,
        config.train.epochs,
        resumed=run.checkpoint,
        stateful={"early_stopping": early_stopping, "lr_plateau": lr_plateau},
        snapshots=_snapshots(config),
    )
    tensorboard = (
        TensorBoardLogger(tensorboard_dir(run.output_dir)) if config.train.tensorboard else None
    )
    stop_on_interrupt = StopOnInterrupt()
    # Order matters: the checkpointer saves what the schedule and early stopping decided.
    all_callbacks = [
        PerTokenLoss(),  # first: every other callback reads the loss per token
        EpochTimer(),
        TokensPerSecond(int(run.train_batches.target_lengths.sum())),
        LearningRateLogger(),
        *[callback for callback in (lr_plateau, early_stopping) if callback is not None],
        *_validation_callbacks(config, run, model, verbose),
        checkpointer,
        *([tensorboard] if tensorboard is not None else []),
        # After the checkpointer: a callback's epoch N begins once epoch N - 1 is checkpointed.
        *callbacks,
        stop_on_interrupt,  # last: a Ctrl-C stops the run once the others have done their part
    ]
    return _Wiring(all_callbacks, checkpointer, stop_on_interrupt, tensorboard)


def _snapshots(config: Config) -> int:
    """How many recent epochs' weights the checkpointer keeps: --keep-checkpoints, and with
    averaging enough that the best epoch and the average_last - 1 before it are kept."""
    averaging = config.train.average_last
    return max(
        config.train.keep_checkpoints,
        averaging + (config.train.patience or 0) if averaging else 0,
    )


def _fit(config: Config, run: TrainingRun, model, wiring: _Wiring, verbose: int) -> None:
    """Fit the epochs left; a Ctrl-C or a nan loss raises, naming the checkpoint kept."""
    checkpointer = wiring.checkpointer
    if run.initial_epoch < config.train.epochs and not checkpointer.stopped_early:
        try:
            with wiring.stop_on_interrupt:
                model.fit_model.fit(
                    run.train_batches,
                    validation_data=run.validation_batches,
                    epochs=config.train.epochs,
                    initial_epoch=run.initial_epoch,
                    callbacks=wiring.callbacks,
                    verbose=verbose,
                )
        except KeyboardInterrupt:
            checkpointer.draw_curve()
            raise _interrupted(
                run.output_dir, checkpointer, run.initial_epoch, wiring.stop_on_interrupt.signum
            ) from None
        finally:
            if wiring.tensorboard is not None:
                wiring.tensorboard.close()
    if checkpointer.diverged is not None:
        raise _diverged(run.output_dir, checkpointer)


def _finish(config: Config, run: TrainingRun, model, checkpointer: Checkpointer) -> TrainResult:
    """Take the kept epoch's weights (the best, averaged if asked) and save the model dir."""
    final_epoch = checkpointer.last_epoch
    # Early stopping (train.patience) keeps the best epoch, from checkpoints/best.
    best = find_checkpoint(run.output_dir, BEST) if config.train.patience is not None else None
    if best is not None:
        model.fit_model.load_weights(best.model_path)
        final_epoch = best.epoch
    averaged: list[int] = []
    if config.train.average_last:
        averaged = average_snapshots(
            model.fit_model, run.output_dir, final_epoch, config.train.average_last
        )
    write_history(run.output_dir / HISTORY_FILE, checkpointer.history)
    checkpointer.draw_curve()
    save_model_dir(
        run.output_dir,
        model,
        run.source_vocab,
        run.target_vocab,
        config,
        run.train_data,
        weights_epochs=averaged or ([final_epoch] if final_epoch else None),
    )
    return TrainResult(
        model_dir=run.output_dir,
        history=checkpointer.history,
        train_pairs=run.n_train,
        validation_pairs=len(run.kept) - run.n_train,
        filtered_pairs=run.filtered_pairs,
        initial_epoch=run.initial_epoch,
        final_epoch=final_epoch,
        averaged_epochs=tuple(averaged),
    )


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


def _validation_callbacks(config: Config, run: TrainingRun, model, verbose: int) -> list:
    """The decoding-based validation callbacks, when asked for and there is validation data:
    the score (with the decoded pairs and examples), and an attention model's heatmaps."""
    validation_pairs = run.kept[run.n_train :]
    every = config.train.score_every
    if every is None or not validation_pairs:
        return []
    grouped = group_references(validation_pairs)
    sources = [source for source, _ in grouped]
    source_ids, _ = encode_sources(sources, run.source_vocab, model.dims.max_encoder_seq_length)
    references = [refs for _, refs in grouped]
    scores = ValidationScore(
        model, sources, source_ids, references, run.target_vocab, every,
        model_dir=run.output_dir, verbose=bool(verbose),
    )  # fmt: skip
    if not has_attention(model):
        return [scores]
    maps = AttentionMaps(
        model, sources[:EXAMPLES], run.source_vocab, run.target_vocab, config, run.output_dir,
        every,
    )  # fmt: skip
    return [scores, maps]
