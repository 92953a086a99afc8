"""Training: batches, the fit loop wiring, callbacks, checkpoints and resume."""

from tandem.training.trainer import TrainingDiverged, TrainingInterrupted, TrainResult, train

__all__ = ["TrainResult", "TrainingDiverged", "TrainingInterrupted", "train"]
