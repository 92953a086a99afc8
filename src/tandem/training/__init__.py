"""Training: batches, the fit loop wiring, callbacks and the model directory it writes."""

from tandem.training.trainer import TrainResult, train

__all__ = ["TrainResult", "train"]
