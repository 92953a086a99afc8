"""The seed encoder-decoder: one owner of the layers hands out all three graphs."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import keras
from keras import ops

from tandem.config import ModelConfig

LAYER_NAMES = ("encoder_lstm", "decoder_lstm", "decoder_dense")


@dataclass(frozen=True)
class ModelDims:
    """Sizes fixed by the training data (the example's num_*_tokens and max_*_seq_length)."""

    num_encoder_tokens: int  # source vocabulary size, reserved ids included
    num_decoder_tokens: int  # target vocabulary size, reserved ids included
    max_encoder_seq_length: int  # sources are padded to this many steps
    max_decoder_seq_length: int  # longest decoder input: start + target + end

    def to_dict(self) -> dict:
        return asdict(self)


class Seq2Seq:
    """Owns the encoder LSTM, decoder LSTM and softmax layer of the classic Keras example.

    The layers are created once; `training_model`, `encoder_model` and `decoder_model` are
    three functional graphs over the same layer objects, so their weights are shared by
    construction. `decoder_model` has the example's signature:
    `Model([decoder_inputs] + decoder_states_inputs, [decoder_outputs] + decoder_states)`.

    Args:
        config: architecture settings.
        dims: vocabulary sizes and sequence lengths from the training data.
        layers: existing layers by name (when rebuilding from a saved model); None creates them.

    Example:
        >>> model = Seq2Seq(ModelConfig(latent_dim=8), ModelDims(10, 12, 5, 7))
        >>> [tuple(t.shape) for t in model.decoder_model.outputs]
        [(None, None, 12), (None, 8), (None, 8)]
    """

    def __init__(self, config: ModelConfig, dims: ModelDims, layers: dict | None = None):
        self.config = config
        self.dims = dims
        latent_dim = config.latent_dim
        if layers is None:
            layers = {
                "encoder_lstm": keras.layers.LSTM(
                    latent_dim, return_state=True, name="encoder_lstm"
                ),
                "decoder_lstm": keras.layers.LSTM(
                    latent_dim, return_sequences=True, return_state=True, name="decoder_lstm"
                ),
                "decoder_dense": keras.layers.Dense(
                    dims.num_decoder_tokens, activation="softmax", name="decoder_dense"
                ),
            }
        self.encoder_lstm = layers["encoder_lstm"]
        self.decoder_lstm = layers["decoder_lstm"]
        self.decoder_dense = layers["decoder_dense"]

        # Training graph: the encoder's final states start the teacher-forced decoder.
        encoder_inputs = keras.Input(shape=(None, dims.num_encoder_tokens), name="encoder_inputs")
        _, state_h, state_c = self.encoder_lstm(encoder_inputs)  # (batch, latent_dim) x 2
        encoder_states = [state_h, state_c]
        decoder_inputs = keras.Input(shape=(None, dims.num_decoder_tokens), name="decoder_inputs")
        decoder_outputs, _, _ = self.decoder_lstm(decoder_inputs, initial_state=encoder_states)
        decoder_outputs = self.decoder_dense(decoder_outputs)  # (batch, steps, num_decoder_tokens)
        self.training_model = keras.Model(
            [encoder_inputs, decoder_inputs], decoder_outputs, name="training_model"
        )

        # Encoder graph: source one-hots -> [state_h, state_c].
        self.encoder_model = keras.Model(encoder_inputs, encoder_states, name="encoder_model")

        # Decoder graph: the same decoder layers, started from states given as inputs, with
        # the new states as outputs, so a loop can feed each step's output into the next.
        decoder_state_input_h = keras.Input(shape=(latent_dim,), name="decoder_state_input_h")
        decoder_state_input_c = keras.Input(shape=(latent_dim,), name="decoder_state_input_c")
        decoder_states_inputs = [decoder_state_input_h, decoder_state_input_c]
        decoder_outputs, state_h, state_c = self.decoder_lstm(
            decoder_inputs, initial_state=decoder_states_inputs
        )
        decoder_states = [state_h, state_c]
        decoder_outputs = self.decoder_dense(decoder_outputs)
        self.decoder_model = keras.Model(
            [decoder_inputs] + decoder_states_inputs,
            [decoder_outputs] + decoder_states,
            name="decoder_model",
        )

    @classmethod
    def from_training_model(cls, config: ModelConfig, dims: ModelDims, model: keras.Model):
        """Rewire the three graphs around the layers of a loaded training model."""
        return cls(config, dims, layers={name: model.get_layer(name) for name in LAYER_NAMES})

    @property
    def variables(self) -> list:
        """Every weight of the model, in a fixed order (for stateless, compiled calls)."""
        return list(self.training_model.variables)

    # The step contract used by every decoding strategy: strategies see only these two.
    # Both compute exactly what the graphs above compute, but multiply the one-hot inputs by
    # the input kernel as a row lookup, the one product the graphs spend on zeros.

    def encode(self, source_ids):
        """Source ids (batch, max_encoder_seq_length) -> decoder state (h, c)."""
        cell = self.encoder_lstm.cell
        inputs = ops.take(cell.kernel, source_ids, axis=0)  # (batch, steps, 4 * latent_dim)
        batch = ops.shape(source_ids)[0]
        zeros = ops.zeros((batch, self.config.latent_dim), dtype=inputs.dtype)

        def step(state, projected):  # projected: (batch, 4 * latent_dim)
            state = _lstm_cell(cell, projected, state)
            return state, None

        state, _ = ops.scan(step, (zeros, zeros), ops.transpose(inputs, (1, 0, 2)))
        return state

    def step(self, tokens, state):
        """One decoder step: tokens (batch,) and state -> (log_probs (batch, vocab), state)."""
        cell = self.decoder_lstm.cell
        state = _lstm_cell(cell, ops.take(cell.kernel, tokens, axis=0), state)  # (batch, latent)
        probs = self.decoder_dense(state[0])  # (batch, vocab)
        # log of the softmax the example trains; the floor keeps -inf out of beam scores.
        log_probs = ops.log(ops.maximum(probs, 1e-30))
        return log_probs, state


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
