"""The recurrent family: the classic example's LSTM, GRU, depth, attention, input feeding."""

from __future__ import annotations

import keras
from keras import ops

from tandem.config import ModelConfig
from tandem.data.vocabulary import PAD_ID
from tandem.models.base import EncoderDecoder, ModelDims
from tandem.models.layers import (
    Attention,
    InitialFeed,
    InputFeedingDecoder,
    OneHot,
    PaddingMask,
    embedding_initializer,
    optional_dropout,
    recurrent_initializers,
)


class RNN(EncoderDecoder):
    """The recurrent family's owner of the layers: the `EncoderDecoder` contract over LSTM or GRU
    layers, stacked, bidirectional, with attention and input feeding as configured.

    The decoder states are each decoder layer's (h, c) (LSTM) or h (GRU), followed, with input
    feeding, by the previous attentional vector and, with attention, by the encoder outputs
    and the source mask; attention models return the attention weights
    (batch, steps, source_steps) as one more, last output. With `ModelConfig.seed()` the graphs
    are exactly the example's: one-hot inputs, one LSTM layer each side, no masking, and
    `fit_model` is the training model fed from id batches through an in-graph one-hot
    expansion.

    Args: as `EncoderDecoder`.

    Example:
        >>> model = RNN(ModelConfig.seed(latent_dim=8), ModelDims(10, 12, 5, 7))
        >>> [tuple(t.shape) for t in model.decoder_model.outputs]
        [(None, None, 12), (None, 8), (None, 8)]
    """

    def __init__(self, config: ModelConfig, dims: ModelDims, layers: dict | None = None):
        self.one_hot = config.inputs == "one_hot"
        self.state_size = 2 if config.cell == "lstm" else 1  # tensors per decoder layer
        super().__init__(config, dims, layers)

    def _make_weightless_layers(self) -> None:
        self._dropout = optional_dropout(self.config.dropout)  # between stacked layers
        super()._make_weightless_layers()

    # -- layers --------------------------------------------------------------------------

    @staticmethod
    def layer_names(config: ModelConfig) -> list[str]:
        """Names of the layers that hold weights, as saved in model.keras."""
        names = []
        if config.inputs == "embedding":
            names += ["source_embedding", "target_embedding"]
        names += [_rnn_name("encoder", config.cell, i) for i in range(config.num_layers)]
        if config.input_feeding:
            names.append("decoder_feeding")
        else:
            names += [_rnn_name("decoder", config.cell, i) for i in range(config.num_layers)]
        if config.bidirectional:
            names += ["bridge_h"] + (["bridge_c"] if config.cell == "lstm" else [])
            if config.attention != "none":
                names.append("memory_bridge")
        if config.attention != "none" and not config.input_feeding:
            names.append("attention")
        return names + ["decoder_dense"]

    @staticmethod
    def make_layers(config: ModelConfig, dims: ModelDims) -> dict:
        """The layers `config` and `dims` call for, by name: new, and unbuilt (no weights)."""
        rnn = keras.layers.LSTM if config.cell == "lstm" else keras.layers.GRU
        latent, layers = config.latent_dim, {}
        if config.inputs != "one_hot":
            layers["source_embedding"] = keras.layers.Embedding(
                dims.num_encoder_tokens,
                config.embedding_dim,
                embeddings_initializer=embedding_initializer(config.init),
                name="source_embedding",
            )
            layers["target_embedding"] = keras.layers.Embedding(
                dims.num_decoder_tokens,
                config.embedding_dim,
                embeddings_initializer=embedding_initializer(config.init),
                name="target_embedding",
            )
        attention = config.attention != "none"
        for i in range(config.num_layers):
            name = _rnn_name("encoder", config.cell, i)
            # Sequences are needed by the next layer and by attention; the seed keeps False.
            sequences = i < config.num_layers - 1 or attention
            initializers = recurrent_initializers(config.init, config.cell)
            layer = rnn(
                latent, return_sequences=sequences, return_state=True, name=name, **initializers
            )
            if config.bidirectional:
                layer = keras.layers.Bidirectional(layer, name=name)
            layers[name] = layer
            if not config.input_feeding:
                name = _rnn_name("decoder", config.cell, i)
                layers[name] = rnn(
                    latent,
                    return_sequences=True,
                    return_state=True,
                    name=name,
                    **recurrent_initializers(config.init, config.cell),
                )
        if config.bidirectional:
            layers["bridge_h"] = keras.layers.Dense(latent, activation="tanh", name="bridge_h")
            if config.cell == "lstm":
                layers["bridge_c"] = keras.layers.Dense(latent, name="bridge_c")
            if attention:
                layers["memory_bridge"] = keras.layers.Dense(
                    latent, use_bias=False, name="memory_bridge"
                )
        if config.input_feeding:
            layers["decoder_feeding"] = InputFeedingDecoder(
                latent,
                config.cell,
                config.num_layers,
                config.attention,
                config.dropout,
                name="decoder_feeding",
                **recurrent_initializers(config.init, config.cell),
            )
        elif attention:
            layers["attention"] = Attention(latent, config.attention, name="attention")
        layers["decoder_dense"] = keras.layers.Dense(
            dims.num_decoder_tokens, activation="softmax", name="decoder_dense"
        )
        return layers

    def _rnn(self, side: str, index: int):
        return self.layers[_rnn_name(side, self.config.cell, index)]

    # -- shared pieces of every graph and of the decoding step -------------------------------

    def _inputs(self, side: str, tokens):
        """Ids (batch, steps) -> the vectors the first recurrent layer reads."""
        if self.one_hot:
            width = (
                self.dims.num_encoder_tokens if side == "source" else self.dims.num_decoder_tokens
            )
            return ops.one_hot(tokens, width)  # (batch, steps, vocab)
        x = self.layers[f"{side}_embedding"](tokens)  # (batch, steps, embedding_dim)
        return self._embedding_dropout(x) if self._embedding_dropout else x

    def _encoder(self, x, mask):
        """(batch, steps, features) -> (memory (batch, steps, latent) or None, layer states)."""
        layer_states = []
        for i in range(self.config.num_layers):
            if i and self._dropout:
                x = self._dropout(x)
            x, *states = self._rnn("encoder", i)(x, mask=mask)  # states: (batch, latent) each
            if self.config.bidirectional:
                half = len(states) // 2
                bridges = [self.layers["bridge_h"], self.layers.get("bridge_c")]
                states = [
                    bridges[k](ops.concatenate([states[k], states[half + k]], axis=-1))
                    for k in range(half)
                ]
            layer_states.append(states)
        memory = None
        if self.config.attention != "none":
            memory = self.layers["memory_bridge"](x) if self.config.bidirectional else x
        return memory, layer_states

    def _decoder(self, y, layer_states, memory, source_mask, target_mask=None, feed=None):
        """Run the decoder from `layer_states` (and, with input feeding, the previous
        attentional vector `feed`): -> (probs, new layer states, attention weights, new feed)."""
        if self.config.input_feeding:
            flat = [s for states in layer_states for s in states] + [feed]
            y, weights, *flat = self.layers["decoder_feeding"](y, flat, memory, source_mask)
            new_states = [
                flat[i : i + self.state_size] for i in range(0, len(flat) - 1, self.state_size)
            ]
            return self._project(y), new_states, weights, flat[-1]
        new_states = []
        for i, states in enumerate(layer_states):
            if i and self._dropout:
                y = self._dropout(y)
            y, *states = self._rnn("decoder", i)(y, initial_state=list(states), mask=target_mask)
            new_states.append(states)
        weights = None
        if self.config.attention != "none":
            y, weights = self.layers["attention"](y, memory, source_mask)  # (b, t, latent)
        return self._project(y), new_states, weights, None  # (b, t, vocab)

    def _project(self, y):
        """Decoder output vectors (batch, steps, latent) -> probabilities (batch, steps, vocab)."""
        if self._output_dropout:
            y = self._output_dropout(y)
        return self.layers["decoder_dense"](y)

    # -- the three graphs ---------------------------------------------------------------

    def _build_graphs(self) -> None:
        # The training graph's encoder tensors are the encoder graph's outputs, and its decoder
        # inputs are the decoder graph's: all three run on the same layers.
        encoder_inputs, decoder_inputs, target, encoder_outputs = self._training_graph()
        self.fit_model = self._fit_graph() if self.one_hot else self.training_model
        self.encoder_model = keras.Model(encoder_inputs, encoder_outputs, name="encoder_model")
        self.decoder_model = self._decoder_graph(decoder_inputs, target)

    def _training_graph(self):
        """Set `training_model`; -> (encoder inputs, decoder inputs, decoder input vectors,
        the encoder graph's outputs)."""
        config, dims = self.config, self.dims
        if self.one_hot:
            encoder_inputs = keras.Input(
                shape=(None, dims.num_encoder_tokens), name="encoder_inputs"
            )
            decoder_inputs = keras.Input(
                shape=(None, dims.num_decoder_tokens), name="decoder_inputs"
            )
            source, target = encoder_inputs, decoder_inputs
        else:
            encoder_inputs = keras.Input(shape=(None,), dtype="int32", name="encoder_inputs")
            decoder_inputs = keras.Input(shape=(None,), dtype="int32", name="decoder_inputs")
            source = self._inputs("source", encoder_inputs)
            target = self._inputs("target", decoder_inputs)
        attention = config.attention != "none"
        # Attention never attends to padding; the recurrent layers skip it when masking is on.
        source_mask = target_mask = attention_mask = None
        if config.mask_padding or attention:
            attention_mask = PaddingMask(self.one_hot, name="source_mask")(encoder_inputs)
        if config.mask_padding:
            source_mask = attention_mask
            target_mask = PaddingMask(self.one_hot, name="target_mask")(decoder_inputs)

        memory, layer_states = self._encoder(source, source_mask)
        feed = None
        if config.input_feeding:
            feed = InitialFeed(config.latent_dim, name="initial_feed")(memory)
        probs, _, _, _ = self._decoder(
            target, layer_states, memory, attention_mask, target_mask, feed
        )
        self.training_model = keras.Model(
            [encoder_inputs, decoder_inputs], probs, name="training_model"
        )
        flat_states = [s for states in layer_states for s in states]
        feeds = [feed] if feed is not None else []
        encoder_outputs = flat_states + feeds + ([memory, attention_mask] if attention else [])
        return encoder_inputs, decoder_inputs, target, encoder_outputs

    def _fit_graph(self) -> keras.Model:
        """The training model behind an in-graph one-hot expansion, so batches stay id arrays.
        It holds the training model, weights and all."""
        ids = [
            keras.Input(shape=(None,), dtype="int32", name="encoder_ids"),
            keras.Input(shape=(None,), dtype="int32", name="decoder_ids"),
        ]
        one_hots = [
            OneHot(self.dims.num_encoder_tokens, name="encoder_one_hot")(ids[0]),
            OneHot(self.dims.num_decoder_tokens, name="decoder_one_hot")(ids[1]),
        ]
        return keras.Model(ids, self.training_model(one_hots), name="fit_model")

    def _decoder_graph(self, decoder_inputs, target) -> keras.Model:
        """The decoder from states given as inputs to the new states, so a loop can feed each
        step's output into the next."""
        config = self.config
        attention = config.attention != "none"
        decoder_states_inputs = [
            keras.Input(shape=(config.latent_dim,), name=f"decoder_state_input_{name}")
            for name in _state_names(config)
        ]
        grouped = [
            decoder_states_inputs[i : i + self.state_size]
            for i in range(0, len(decoder_states_inputs), self.state_size)
        ]
        feed_inputs = []
        if config.input_feeding:
            feed_inputs = [keras.Input(shape=(config.latent_dim,), name="decoder_feed_input")]
        memory_inputs = []
        if attention:
            memory_inputs = [
                keras.Input(shape=(None, config.latent_dim), name="encoder_outputs_input"),
                keras.Input(shape=(None,), dtype="bool", name="source_mask_input"),
            ]
        memory_input, mask_input = memory_inputs if attention else (None, None)
        probs, new_states, weights, new_feed = self._decoder(
            target, grouped, memory_input, mask_input, feed=feed_inputs[0] if feed_inputs else None
        )
        decoder_states = [s for states in new_states for s in states]
        decoder_states += ([new_feed] if feed_inputs else []) + memory_inputs
        return keras.Model(
            [decoder_inputs] + decoder_states_inputs + feed_inputs + memory_inputs,
            [probs] + decoder_states + ([weights] if attention else []),
            name="decoder_model",
        )

    # -- the step contract used by every decoding strategy ---------------------------------

    def encode(self, source_ids, max_length: int | None = None):
        """Source ids (batch, steps) -> the decoder state, a dict of arrays (batch first).
        `max_length` (most steps the decoding will take) sizes what grows with the output
        (the Transformer's caches); recurrent states do not need it."""
        if self._is_seed_lstm():
            return {"layers": (_seed_lstm_encode(self._rnn("encoder", 0).cell, source_ids),)}
        mask = ops.not_equal(source_ids, PAD_ID)  # (batch, steps)
        x = self._inputs("source", source_ids)
        memory, layer_states = self._encoder(x, mask if self.config.mask_padding else None)
        state = {"layers": tuple(tuple(states) for states in layer_states)}
        if memory is not None:
            state["memory"] = memory  # (batch, steps, latent)
            state["source_mask"] = mask
            state["attention"] = ops.zeros(ops.shape(source_ids), dtype=memory.dtype)
        if self.config.input_feeding:
            state["feed"] = ops.zeros_like(layer_states[-1][0])  # (batch, latent)
        return state

    def step(self, tokens, state):
        """One decoder step: tokens (batch,) and state -> (log_probs (batch, vocab), state)."""
        if self._is_seed_lstm():
            cell = self._rnn("decoder", 0).cell
            [(h, c)] = state["layers"]
            # The one-hot product is a row lookup in the input kernel.
            h, c = _lstm_cell(cell, ops.take(cell.kernel, tokens, axis=0), (h, c))
            probs = self.layers["decoder_dense"](h)  # (batch, vocab)
            new_state = {"layers": ((h, c),)}
        else:
            y = self._inputs("target", tokens[:, None])  # (batch, 1, features)
            probs, layer_states, weights, feed = self._decoder(
                y,
                state["layers"],
                state.get("memory"),
                state.get("source_mask"),
                feed=state.get("feed"),
            )
            probs = probs[:, 0]  # (batch, vocab)
            new_state = {**state, "layers": tuple(tuple(s) for s in layer_states)}
            if weights is not None:
                new_state["attention"] = weights[:, 0]  # (batch, source_steps)
            if feed is not None:
                new_state["feed"] = feed
        return self._log_probs(probs), new_state  # log of the softmax the model trains

    def _is_seed_lstm(self) -> bool:
        config = self.config
        return (
            self.one_hot
            and config.cell == "lstm"
            and config.num_layers == 1
            and not config.bidirectional
            and config.attention == "none"
            and not config.mask_padding
        )


def _rnn_name(side: str, cell: str, index: int) -> str:
    return f"{side}_{cell}" + (f"_{index}" if index else "")


def _state_names(config: ModelConfig) -> list[str]:
    kinds = ("h", "c") if config.cell == "lstm" else ("h",)
    return [kind + (f"_{i}" if i else "") for i in range(config.num_layers) for kind in kinds]


def _seed_lstm_encode(cell, source_ids):
    """The seed encoder on ids: input kernel rows looked up instead of one-hot products."""
    inputs = ops.take(cell.kernel, source_ids, axis=0)  # (batch, steps, 4 * latent_dim)
    zeros = ops.zeros((ops.shape(source_ids)[0], cell.units), dtype=inputs.dtype)

    def step(state, projected):  # projected: (batch, 4 * latent_dim)
        return _lstm_cell(cell, projected, state), None

    state, _ = ops.scan(step, (zeros, zeros), ops.transpose(inputs, (1, 0, 2)))
    return state


def _lstm_cell(cell, projected_inputs, state):
    """Keras LSTMCell arithmetic (gates i, f, c, o) on inputs already multiplied by its kernel."""
    h, c = state  # (batch, latent_dim) each
    z = projected_inputs + ops.matmul(h, cell.recurrent_kernel)  # (batch, 4 * latent_dim)
    if cell.use_bias:
        z = z + cell.bias
    i, f, g, o = ops.split(z, 4, axis=-1)
    c = cell.recurrent_activation(f) * c + cell.recurrent_activation(i) * cell.activation(g)
    h = cell.recurrent_activation(o) * cell.activation(c)
    return (h, c)
