"""Training: batches, the fit loop wiring, callbacks, checkpoints and resume."""

from tandem.training.averaging import average_model_dir
from tandem.training.trainer import (
    TrainingDiverged,
    TrainingInterrupted,
    TrainPlan,
    TrainResult,
    train,
)

__all__ = [
    "TrainPlan",
    "TrainResult",
    "TrainingDiverged",
    "TrainingInterrupted",
    "average_model_dir",
    "train",
]
