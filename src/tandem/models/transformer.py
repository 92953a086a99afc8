"""The Transformer family (Vaswani et al., 2017; pre-layer-norm): the same three graphs and step
contract as the recurrent family, with key/value caches as the decoder's states."""

from __future__ import annotations

import keras
from keras import ops

from tandem.config import ModelConfig
from tandem.data.vocabulary import PAD_ID
from tandem.models.base import EncoderDecoder, ModelDims
from tandem.models.layers import PaddingMask, maybe_dropout
from tandem.models.transformer_layers import (
    EmptyCache,
    MemoryProjection,
    Positions,
    TransformerDecoder,
    TransformerEncoder,
)


class Transformer(EncoderDecoder):
    """The Transformer family's owner of the layers: the `EncoderDecoder` contract with
    key/value caches as the decoder's states.

    The graphs keep the classic example's wiring. `encoder_model`: sources -> the decoder's
    first states. `decoder_model`: `[decoder_inputs] + decoder_states_inputs ->
    [decoder_outputs] + decoder_states + [attention weights]`, where the states are each
    decoder layer's self-attention keys and values (batch, length, latent_dim), length the
    longest decoder input of training, then the position (batch,), then each layer's
    cross-attention keys and values (batch, source_steps, latent_dim) and the source mask.
    Feeding one token at a time with the returned states reproduces the training model.

    Args: as `EncoderDecoder`.
    """

    def _make_weightless_layers(self) -> None:
        super()._make_weightless_layers()
        self._source_positions = Positions(self.config.latent_dim, name="source_positions")
        self._target_positions = Positions(self.config.latent_dim, name="target_positions")

    @staticmethod
    def layer_names(config: ModelConfig) -> list[str]:
        return [
            "source_embedding",
            "target_embedding",
            "encoder",
            "memory_projection",
            "decoder",
            "decoder_dense",
        ]

    @staticmethod
    def make_layers(config: ModelConfig, dims: ModelDims) -> dict:
        """The layers `config` and `dims` call for, by name: new, and unbuilt (no weights)."""
        units = config.latent_dim
        blocks = dict(
            units=units,
            heads=config.heads,
            ff_dim=config.ff_dim,
            num_layers=config.num_layers,
            dropout=config.dropout,
        )
        return {
            "source_embedding": keras.layers.Embedding(
                dims.num_encoder_tokens, units, name="source_embedding"
            ),
            "target_embedding": keras.layers.Embedding(
                dims.num_decoder_tokens, units, name="target_embedding"
            ),
            "encoder": TransformerEncoder(**blocks, name="encoder"),
            "memory_projection": MemoryProjection(
                units, config.num_layers, name="memory_projection"
            ),
            "decoder": TransformerDecoder(**blocks, name="decoder"),
            "decoder_dense": keras.layers.Dense(
                dims.num_decoder_tokens, activation="softmax", name="decoder_dense"
            ),
        }

    # -- pieces shared by the graphs and the decoding step ---------------------------------

    def _embed(self, side: str, tokens, offset=None):
        """Ids (batch, t) -> embeddings with positions (batch, t, latent_dim)."""
        positions = self._source_positions if side == "source" else self._target_positions
        x = self.layers[f"{side}_embedding"](tokens)
        x = positions(x) if offset is None else positions(x, offset)
        return maybe_dropout(self._embedding_dropout, x, None)

    def _encode(self, source_ids, source_mask):
        """-> cross-attention keys and values of every decoder layer."""
        memory = self.layers["encoder"](self._embed("source", source_ids), source_mask)
        return self.layers["memory_projection"](memory)

    def _project(self, y):
        return self.layers["decoder_dense"](maybe_dropout(self._output_dropout, y, None))

    # -- the three graphs ---------------------------------------------------------------

    def _build_graphs(self) -> None:
        # The training graph's encoder tensors feed the encoder graph, and its decoder inputs
        # the decoder graph: all three run on the same layers.
        encoder_inputs, decoder_inputs, cross, source_mask = self._training_graph()
        self.fit_model = self.training_model
        self.encoder_model = self._encoder_graph(encoder_inputs, cross, source_mask)
        self.decoder_model = self._decoder_graph(decoder_inputs)

    def _training_graph(self):
        """Set `training_model`; -> (encoder inputs, decoder inputs, cross-attention keys and
        values, source mask)."""
        encoder_inputs = keras.Input(shape=(None,), dtype="int32", name="encoder_inputs")
        decoder_inputs = keras.Input(shape=(None,), dtype="int32", name="decoder_inputs")
        source_mask = PaddingMask(name="source_mask")(encoder_inputs)  # (batch, s)
        cross = self._encode(encoder_inputs, source_mask)
        target = self._embed("target", decoder_inputs)
        outputs, *_ = self.layers["decoder"](target, cross, source_mask)
        probs = self._project(outputs)  # (batch, t, vocab)
        self.training_model = keras.Model(
            [encoder_inputs, decoder_inputs], probs, name="training_model"
        )
        return encoder_inputs, decoder_inputs, cross, source_mask

    def _encoder_graph(self, encoder_inputs, cross, source_mask) -> keras.Model:
        config = self.config
        empty = EmptyCache(
            config.latent_dim,
            config.num_layers,
            self.dims.max_decoder_seq_length,
            name="empty_cache",
        )(cross[0])
        return keras.Model(encoder_inputs, empty + cross + [source_mask], name="encoder_model")

    def _decoder_graph(self, decoder_inputs) -> keras.Model:
        """One or more steps written into caches given as inputs -> the new caches."""
        config = self.config
        units, length = config.latent_dim, self.dims.max_decoder_seq_length
        cache_inputs = [
            keras.Input(shape=(length, units), name=f"decoder_state_input_{kind}_{i}")
            for i in range(config.num_layers)
            for kind in ("keys", "values")
        ]
        position_input = keras.Input(shape=(), dtype="int32", name="decoder_state_input_position")
        cross_inputs = [
            keras.Input(shape=(None, units), name=f"cross_{kind}_input_{i}")
            for i in range(config.num_layers)
            for kind in ("keys", "values")
        ]
        mask_input = keras.Input(shape=(None,), dtype="bool", name="source_mask_input")
        target = self._embed("target", decoder_inputs, position_input)
        outputs, weights, *new_states = self.layers["decoder"](
            target, cross_inputs, mask_input, cache_inputs, position_input
        )
        states_inputs = cache_inputs + [position_input] + cross_inputs + [mask_input]
        return keras.Model(
            [decoder_inputs] + states_inputs,
            [self._project(outputs)] + new_states + cross_inputs + [mask_input, weights],
            name="decoder_model",
        )

    # -- the step contract ---------------------------------------------------------------

    def encode(self, source_ids, max_length: int | None = None):
        """Source ids (batch, s) -> the decoder state; the caches hold `max_length` steps
        (default: the longest decoder input of training)."""
        source_mask = ops.not_equal(source_ids, PAD_ID)  # (batch, s)
        cross = self._encode(source_ids, source_mask)
        length = max_length or self.dims.max_decoder_seq_length
        *cache, position = EmptyCache(self.config.latent_dim, self.config.num_layers, length)(
            cross[0]
        )
        return {
            "cache": tuple(cache),
            "position": position,
            "cross": tuple(cross),
            "source_mask": source_mask,
            "attention": ops.zeros(ops.shape(source_ids), dtype=cross[0].dtype),
        }

    def step(self, tokens, state):
        """One decoder step: tokens (batch,) and state -> (log_probs (batch, vocab), state)."""
        target = self._embed("target", tokens[:, None], state["position"])
        outputs, weights, *new_cache = self.layers["decoder"](
            target, list(state["cross"]), state["source_mask"], list(state["cache"]),
            state["position"],
        )  # fmt: skip
        position = new_cache.pop()
        probs = self._project(outputs)[:, 0]  # (batch, vocab)
        new_state = {
            **state,
            "cache": tuple(new_cache),
            "position": position,
            "attention": weights[:, 0],
        }
        return self._log_probs(probs), new_state
