"""Keras callbacks of the fit loop: timing, learning-rate logging, Ctrl-C and the checkpointer."""

from __future__ import annotations

import math
import random
import signal
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from tandem.model_dir import BEST, CURVE_FILE, HISTORY_FILE, LAST, write_history
from tandem.training.checkpoints import (
    Checkpoint,
    copy_checkpoint_files,
    save_snapshot,
    save_training_model,
    seed_generator_states,
    write_checkpoint,
)
from tandem.training.plots import plot_learning_curve

# Drawing the learning curve takes about 0.2 s (matplotlib), as long as a whole epoch of a
# small model on a GPU: during training it is redrawn at most this often (and at the first
# epoch's end), and always when training ends, stops or is interrupted. history.csv is
# written at every epoch end.
CURVE_INTERVAL_SECONDS = 60.0

# The counters that make Keras's callbacks continue where they stopped after a resume.
RESUMABLE_FIELDS = {
    "early_stopping": ("wait", "best", "best_epoch", "stopped_epoch"),
    "lr_plateau": ("wait", "best", "cooldown_counter"),
}


class EpochTimer(keras.callbacks.Callback):
    """Adds the epoch's wall time to the logs (and so to history.csv)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["seconds"] = time.perf_counter() - self.start


class TokensPerSecond(keras.callbacks.Callback):
    """Adds the real (unpadded) target tokens trained on per second to the logs
    (`tokens_per_second`): the epoch's tokens over the time from its start to the end of its
    last training batch (validation, which follows, is not counted).

    Args:
        tokens_per_epoch: target tokens of the training split (each pair is trained on once
            an epoch, filler rows of a data-parallel batch not counted).
    """

    def __init__(self, tokens_per_epoch: int):
        super().__init__()
        self.tokens_per_epoch = tokens_per_epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.start, self.trained = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        # Keras evaluates the validation split with fit's callbacks, once training is done.
        if getattr(self, "trained", 0) is None:
            self.trained = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            seconds = (self.trained or time.perf_counter()) - self.start
            logs["tokens_per_second"] = self.tokens_per_epoch / max(seconds, 1e-9)


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the learning rate the epoch trained with to the logs (`learning_rate`): its rate at
    the epoch's first step (a per-step schedule such as inverse_sqrt moves on from there)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.rate


class StopOnInterrupt(keras.callbacks.Callback):
    """Ctrl-C (SIGINT) or SIGTERM during `fit` stops training at the next batch or epoch boundary.

    While the context is open, the first of these signals only records the request (a handler
    that raises could fire inside a finaliser or native code that swallows the exception, and
    the run would go on); the callback then raises KeyboardInterrupt at the next batch, epoch
    boundary or validation batch, after the checkpointer has finished its work. The handlers
    that were there before come back at once, so a second signal stops right away. SIGTERM
    (`kill`, a job scheduler, `docker stop`) is handled like Ctrl-C, so the run keeps its last
    checkpoint and says how to resume. A signal is left alone when it is ignored or handled by
    someone else, and nothing is installed off the main thread (where Python cannot).
    """

    def __init__(self):
        super().__init__()
        self.requested = False
        self.signum: int | None = None  # the signal that asked to stop
        self.previous: dict[int, object] = {}  # signal number -> the handler to put back

    def __enter__(self) -> StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            for signum, default in (
                (signal.SIGINT, signal.default_int_handler),
                (signal.SIGTERM, signal.SIG_DFL),
            ):
                if signal.getsignal(signum) == default:
                    self.previous[signum] = signal.signal(signum, self._request)
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    def _request(self, signum, frame) -> None:
        self.requested = True
        self.signum = signum
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous.clear()

    def _stop_if_requested(self, index=None, logs=None) -> None:
        if self.requested:
            raise KeyboardInterrupt

    # Batch *begin* hooks: Keras then keeps dispatching the batch-end hooks asynchronously.
    on_epoch_begin = on_epoch_end = _stop_if_requested
    on_train_batch_begin = on_test_batch_begin = _stop_if_requested


class Checkpointer(keras.callbacks.Callback):
    """Writes the last checkpoint at every epoch end, and the best one when the loss improved.

    An epoch whose loss (or val_loss, or any weight) is not finite is never saved: training
    stops and `diverged` says when. A resumed run gets the shuffling order, the history and
    the counters of early stopping and the plateau schedule back from the checkpoint.

    Args:
        model_dir: the model directory (checkpoints go to its `checkpoints/`).
        train_batches: the training `TrainingBatches`; its shuffling state (`get_state`) is saved.
        monitor: `val_loss`, or `loss` without a validation split: picks the best checkpoint.
        epochs: the planned number of epochs (recorded in the state).
        resumed: the checkpoint this run continues, if any.
        stateful: Keras callbacks to save and restore, by `RESUMABLE_FIELDS` name.
        snapshots: keep the trainable weights of this many recent epochs (for averaging and
            --keep-checkpoints; written before the last checkpoint, so a resumed epoch
            rewrites its own).
    """

    def __init__(
        self,
        model_dir: Path,
        train_batches,
        monitor: str,
        epochs: int,
        resumed: Checkpoint | None = None,
        stateful: dict[str, keras.callbacks.Callback] | None = None,
        snapshots: int = 0,
    ):
        super().__init__()
        self.model_dir = Path(model_dir)
        self.train_batches = train_batches
        self.monitor = monitor
        self.epochs = epochs
        self.resumed = resumed
        self.stateful = {k: v for k, v in (stateful or {}).items() if v is not None}
        self.snapshots = snapshots
        state = resumed.state if resumed else {}
        self.history: list[dict] = resumed.history() if resumed else []
        self.best: float | None = state.get("best")
        self.best_epoch: int | None = state.get("best_epoch")
        self.last_epoch: int = state.get("epoch", 0)  # epochs in the last checkpoint
        self.stopped_early: bool = state.get("stopped_early", False)
        self.diverged: tuple[int, float] | None = None  # (1-based epoch, the bad value)
        self._pending_shuffle = state.get("shuffle")
        self._pending_random = state.get("global_random")
        self._curve_drawn: tuple[float, int] | None = None  # (monotonic time, epochs drawn)

    def on_train_begin(self, logs=None):
        # After Keras's callbacks reset themselves in their own on_train_begin.
        saved = self.resumed.state.get("callbacks", {}) if self.resumed else {}
        for name, callback in self.stateful.items():
            for field, value in saved.get(name, {}).items():
                setattr(callback, field, value)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if self._pending_shuffle is not None:
            # Set here, after Keras's start-of-fit on_epoch_end call has reshuffled once.
            self.train_batches.set_state(self._pending_shuffle)
            self._pending_shuffle = None
        if self._pending_random is not None:
            # Keras's fit(shuffle=True) orders a PyDataset's batches with Python's `random`.
            set_global_random_state(self._pending_random)
            self._pending_random = None

    def on_train_batch_end(self, batch, logs=None):
        self._check((logs or {}).get("loss"))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for key in ("loss", "val_loss"):
            self._check(logs.get(key))
        if self.diverged is None and not _finite_weights(self.model):
            self._check(math.nan)
        if self.diverged is not None:
            return
        row = {"epoch": epoch, **{key: float(value) for key, value in logs.items()}}
        self.history.append(row)
        value = row.get(self.monitor)
        improved = value is not None and (self.best is None or value < self.best)
        if improved:
            self.best, self.best_epoch = value, epoch + 1
        early_stopping = self.stateful.get("early_stopping")
        self.stopped_early = bool(early_stopping and early_stopping.stopped_epoch > 0)
        state = self._state(epoch + 1)
        if self.snapshots:
            save_snapshot(self.model, self.model_dir, epoch + 1, keep=self.snapshots)
        last = write_checkpoint(
            self.model_dir,
            LAST,
            state,
            lambda directory: save_training_model(self.model, directory, self.history),
        )
        if improved:
            write_checkpoint(self.model_dir, BEST, state, copy_checkpoint_files(last))
        self.last_epoch = epoch + 1
        write_history(self.model_dir / HISTORY_FILE, self.history)
        self.draw_curve(force=False)

    def on_train_end(self, logs=None):
        self.draw_curve()

    def draw_curve(self, force: bool = True) -> None:
        """Draw the learning curve of the epochs checkpointed so far, unless it shows them
        already; without `force`, only if CURVE_INTERVAL_SECONDS have passed since the last
        drawing (or none was drawn yet)."""
        drawn = self._curve_drawn
        if self.last_epoch == 0 or (drawn is not None and drawn[1] == self.last_epoch):
            return
        if not force and drawn is not None and time.monotonic() - drawn[0] < CURVE_INTERVAL_SECONDS:
            return
        draw_learning_curve(self.history[: self.last_epoch], self.model_dir / CURVE_FILE)
        self._curve_drawn = (time.monotonic(), self.last_epoch)

    def _check(self, value) -> None:
        if value is None or self.diverged is not None:
            return
        value = float(value)
        if not math.isfinite(value):
            self.diverged = (self.epoch + 1, value)
            self.model.stop_training = True

    def _state(self, epochs_done: int) -> dict:
        return {
            "epoch": epochs_done,
            "epochs": self.epochs,
            "monitor": self.monitor,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "shuffle": self.train_batches.get_state(),
            "global_random": global_random_state(),
            "seed_generators": [
                keras.ops.convert_to_numpy(variable).tolist()
                for variable in seed_generator_states(self.model)
            ],
            "callbacks": {
                name: {field: _plain(getattr(callback, field)) for field in RESUMABLE_FIELDS[name]}
                for name, callback in self.stateful.items()
            },
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }


def global_random_state() -> dict:
    """Python's and NumPy's global RNG states (Keras shuffles batch order with `random`)."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), position, has_gauss, cached],
    }


def set_global_random_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))


def draw_learning_curve(history: Sequence[dict], path: Path) -> None:
    """Update the learning-curve PNG; a failure to draw is a warning, never stops training."""
    try:
        plot_learning_curve(list(history), path)
    except Exception as exc:  # matplotlib's errors are many; the curve is a convenience
        warnings.warn(f"cannot draw {path}: {exc}", stacklevel=2)


def _finite_weights(model: keras.Model) -> bool:
    return all(np.isfinite(keras.ops.convert_to_numpy(v)).all() for v in model.trainable_variables)


def _plain(value):
    """A callback counter as JSON: numpy scalars to Python, infinities to None."""
    if value is None:
        return None
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
