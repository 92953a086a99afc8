"""Keras layers and the three graphs: training model, encoder model, decoder step model."""

from tandem.models.base import EncoderDecoder, ModelDims
from tandem.models.families import (
    FAMILY_CLASSES,
    build_model,
    build_model_from_training_model,
    model_class,
)
from tandem.models.rnn import RNN
from tandem.models.transformer import Transformer

__all__ = [
    "FAMILY_CLASSES",
    "EncoderDecoder",
    "ModelDims",
    "RNN",
    "Transformer",
    "build_model",
    "build_model_from_training_model",
    "model_class",
]
