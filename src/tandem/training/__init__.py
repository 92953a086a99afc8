"""Training: batches, the fit loop wiring, callbacks, checkpoints and resume."""

from tandem.training.trainer import (
    TrainingDiverged,
    TrainingInterrupted,
    TrainResult,
    average_model_dir,
    train,
)

__all__ = ["TrainResult", "TrainingDiverged", "TrainingInterrupted", "average_model_dir", "train"]
