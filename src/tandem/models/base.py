"""What every model family honours: one owner of the layers hands out all three graphs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass

import keras
from keras import ops

from tandem.config import ModelConfig
from tandem.models.layers import optional_dropout


@dataclass(frozen=True)
class ModelDims:
    """Sizes fixed by the training data (the example's num_*_tokens and max_*_seq_length)."""

    num_encoder_tokens: int  # source vocabulary size, reserved ids included
    num_decoder_tokens: int  # target vocabulary size, reserved ids included
    max_encoder_seq_length: int  # longest training source (unmasked models pad to it)
    max_decoder_seq_length: int  # longest decoder input: start + target + end

    def to_dict(self) -> dict:
        return asdict(self)


class EncoderDecoder(ABC):
    """Owns every layer of an encoder-decoder and builds three graphs over the same objects.

    Every family (`RNN`, `Transformer`) keeps one contract. `training_model` is teacher-forced:
    [sources, decoder inputs] -> probabilities (batch, steps, vocab). `encoder_model` maps
    sources to the decoder's start state. `decoder_model` has the classic example's signature
    `Model([decoder_inputs] + decoder_states_inputs, [decoder_outputs] + decoder_states)`,
    states as the family defines them; fed one token at a time with the states it returns, it
    reproduces the training model. `fit_model` is what training fits: the training model, or a
    model holding it. `encode` and `step` are the decoder as functions of arrays: all that a
    decoding strategy sees.

    A family names the layers that hold weights (`layer_names`), makes them (`make_layers`)
    and wires the graphs (`_build_graphs`); `tandem.models.build_model` picks the family.

    Args:
        config: architecture settings.
        dims: vocabulary sizes and sequence lengths from the training data.
        layers: existing layers by name (when rebuilding from a saved model); None creates them.

    Example:
        >>> model = build_model(ModelConfig.seed(latent_dim=8), ModelDims(10, 12, 5, 7))
        >>> [tuple(t.shape) for t in model.decoder_model.outputs]
        [(None, None, 12), (None, 8), (None, 8)]
    """

    one_hot = False  # the graphs read one-hot vectors (the seed's), not ids
    training_model: keras.Model  # [encoder_inputs, decoder_inputs] -> probabilities
    fit_model: keras.Model  # what training fits: the training model, or a model holding it
    encoder_model: keras.Model  # encoder_inputs -> the decoder's start states
    decoder_model: keras.Model  # [decoder_inputs] + states -> [probabilities] + new states

    def __init__(self, config: ModelConfig, dims: ModelDims, layers: dict | None = None):
        self.config = config
        self.dims = dims
        self.layers = layers if layers is not None else self.make_layers(config, dims)
        self._make_weightless_layers()
        self._build_graphs()

    # -- what a family defines ----------------------------------------------------------

    @staticmethod
    @abstractmethod
    def layer_names(config: ModelConfig) -> list[str]:
        """Names of the layers that hold weights, as saved in model.keras."""

    @staticmethod
    @abstractmethod
    def make_layers(config: ModelConfig, dims: ModelDims) -> dict:
        """The layers `config` and `dims` call for, by name: new, and unbuilt (no weights)."""

    @abstractmethod
    def _build_graphs(self) -> None:
        """Set `training_model`, `fit_model`, `encoder_model` and `decoder_model`."""

    @abstractmethod
    def encode(self, source_ids, max_length: int | None = None) -> dict:
        """Source ids (batch, steps) -> the decoder state, a dict of arrays (batch first).
        `max_length` (most steps the decoding will take) sizes what grows with the output."""

    @abstractmethod
    def step(self, tokens, state: dict):
        """One decoder step: tokens (batch,) and state -> (log_probs (batch, vocab), state)."""

    # -- shared by every family ---------------------------------------------------------

    def _make_weightless_layers(self) -> None:
        """Layers the graphs call that hold no weights (dropouts), made per model, in a fixed
        order: each draws its random seed when made."""
        self._embedding_dropout = optional_dropout(self.config.embedding_rate)
        self._output_dropout = optional_dropout(self.config.output_rate)

    @staticmethod
    def _log_probs(probs):
        """Probabilities (batch, vocab) -> their log; the floor keeps -inf out of beam scores."""
        return ops.log(ops.maximum(probs, 1e-30))

    @classmethod
    def from_training_model(
        cls, config: ModelConfig, dims: ModelDims, model: keras.Model
    ) -> EncoderDecoder:
        """Rewire the three graphs around the layers of a loaded training model (or of the
        `fit_model` holding it)."""
        if any(layer.name == "training_model" for layer in model.layers):
            model = model.get_layer("training_model")
        names = cls.layer_names(config)
        unused = sorted({layer.name for layer in model.layers if layer.weights} - set(names))
        if unused:  # the weights were trained with another architecture than `config` says
            raise ValueError(f"the weights hold layers the config's model does not use: {unused}")
        return cls(config, dims, {name: model.get_layer(name) for name in names})

    @property
    def variables(self) -> list:
        """Every weight of the model, in a fixed order (for stateless, compiled calls)."""
        return list(self.training_model.variables)
