"""The model families by name, and the factory every caller builds a model with."""

from __future__ import annotations

import keras

from tandem.config import ModelConfig
from tandem.models.base import EncoderDecoder, ModelDims
from tandem.models.rnn import RNN
from tandem.models.transformer import Transformer

FAMILY_CLASSES: dict[str, type[EncoderDecoder]] = {"rnn": RNN, "transformer": Transformer}


def model_class(config: ModelConfig) -> type[EncoderDecoder]:
    """The class of `config.family` (the config has already refused unknown families)."""
    return FAMILY_CLASSES[config.family]


def build_model(config: ModelConfig, dims: ModelDims, layers: dict | None = None) -> EncoderDecoder:
    """The model `config` describes, with its three graphs.

    Args:
        config: architecture settings; `config.family` picks the class.
        dims: vocabulary sizes and sequence lengths from the training data.
        layers: existing layers by name; None creates new, unbuilt ones.

    Returns:
        EncoderDecoder: an `RNN` or a `Transformer`.

    Example:
        >>> model = build_model(ModelConfig.seed(latent_dim=8), ModelDims(10, 12, 5, 7))
        >>> type(model).__name__
        'RNN'
    """
    return model_class(config)(config, dims, layers)


def build_model_from_training_model(
    config: ModelConfig, dims: ModelDims, model: keras.Model
) -> EncoderDecoder:
    """The model `config` describes, rewired around the layers of a loaded training model (or
    of the `fit_model` holding it): see `EncoderDecoder.from_training_model`."""
    return model_class(config).from_training_model(config, dims, model)
