"""TensorBoard event files of a run, written with tensorboardX (no TensorFlow needed)."""

from __future__ import annotations

import math
from pathlib import Path

import keras


class TensorBoardLogger(keras.callbacks.Callback):
    """At every epoch end, each number in the logs as a scalar of step `epoch` (1-based).

    The tags are history.csv's columns (`loss`, `val_loss`, `accuracy`, `learning_rate`,
    `tokens_per_second`, `val_chrf`, ...), so the two always agree. Each epoch is flushed to
    disk as it ends; a resumed run adds an event file beside the earlier ones.

    Args:
        log_dir: the directory of the event files (`tensorboard --logdir` reads it).
    """

    def __init__(self, log_dir: str | Path):
        super().__init__()
        self.log_dir = Path(log_dir)
        self.writer = None

    def on_train_begin(self, logs=None):
        from tensorboardX import SummaryWriter

        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(str(self.log_dir))

    def on_epoch_end(self, epoch, logs=None):
        if self.writer is None:
            return
        for key, value in sorted((logs or {}).items()):
            value = float(value)
            if math.isfinite(value):
                self.writer.add_scalar(key, value, global_step=epoch + 1)
        self.writer.flush()

    def on_train_end(self, logs=None):
        self.close()

    def close(self) -> None:
        """Flush and close the event file (also after an interrupted `fit`)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
