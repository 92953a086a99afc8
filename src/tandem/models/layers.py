"""Custom layers of the model family, each Keras-serializable and safe to load."""

from __future__ import annotations

import math
import random

import keras
from keras import ops

from tandem.data.vocabulary import PAD_ID

PACKAGE = "tandem"
ATTENTION_SCORES = ("dot", "general", "bahdanau")


def optional_dropout(rate: float) -> keras.layers.Dropout | None:
    """A dropout layer of `rate`, or None for 0 (the graph then holds no dropout at all)."""
    return keras.layers.Dropout(rate) if rate else None


def maybe_dropout(dropout: keras.layers.Dropout | None, x, training=None):
    """`x` through `dropout`, or `x` itself when there is none."""
    return dropout(x, training=training) if dropout is not None else x


@keras.saving.register_keras_serializable(package=PACKAGE)
class GateGlorotUniform(keras.initializers.Initializer):
    """Glorot uniform over each gate's block of a recurrent layer's kernel (input or recurrent,
    shape (in, gates * units)), as if each gate had its own matrix: limits
    +-sqrt(6 / (in + units)) instead of Keras's +-sqrt(6 / (in + gates * units)). JoeyNMT's
    `xavier_uniform_n_`.

    Args:
        gates: blocks side by side in the kernel's last axis (LSTM 4, GRU 3).
        seed: random seed; None draws one from Python's `random` (which
            `keras.utils.set_random_seed` seeds), so each copy made from the config differs.
    """

    def __init__(self, gates: int = 4, seed: int | None = None):
        self.gates = gates
        self._init_seed = seed
        self.seed = seed if seed is not None else random.randint(1, 2**31 - 1)

    def __call__(self, shape, dtype=None):
        limit = math.sqrt(6.0 / (shape[0] + shape[-1] // self.gates))
        return keras.random.uniform(shape, -limit, limit, dtype=dtype, seed=self.seed)

    def get_config(self):
        return {"gates": self.gates, "seed": self._init_seed}


def recurrent_initializers(init: str, cell: str) -> dict:
    """The initializer arguments of a recurrent layer or cell for ModelConfig.init."""
    if init == "keras":
        return {}
    gates = 4 if cell == "lstm" else 3
    return {
        "kernel_initializer": GateGlorotUniform(gates),
        "recurrent_initializer": GateGlorotUniform(gates),
    }


def embedding_initializer(init: str) -> str:
    """The Embedding initializer for ModelConfig.init."""
    return "uniform" if init == "keras" else "glorot_uniform"


@keras.saving.register_keras_serializable(package=PACKAGE)
class PaddingMask(keras.layers.Layer):
    """Ids (batch, steps) or one-hots (batch, steps, vocab) -> bool (batch, steps), False at padding.

    Masks are passed explicitly to the recurrent and attention layers, so the training graph,
    the inference graphs and the compiled decoding step all mask the same way.

    Args:
        one_hot: the inputs are one-hot vectors (the seed's), not ids.
    """

    def __init__(self, one_hot: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.one_hot = one_hot

    def call(self, inputs):
        if self.one_hot:
            return ops.not_equal(inputs[..., PAD_ID], 1.0)
        return ops.not_equal(inputs, PAD_ID)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:2])

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(tuple(inputs.shape[:2]), dtype="bool")

    def get_config(self):
        return {**super().get_config(), "one_hot": self.one_hot}


@keras.saving.register_keras_serializable(package=PACKAGE)
class OneHot(keras.layers.Layer):
    """Ids (batch, steps) -> float one-hot vectors (batch, steps, num_tokens), in the graph.

    Lets the seed's one-hot models train from id batches: the host never builds the one-hot
    arrays, the compiled step does.

    Args:
        num_tokens: the vocabulary size, the width of the vectors.
    """

    def __init__(self, num_tokens: int, **kwargs):
        super().__init__(**kwargs)
        self.num_tokens = num_tokens

    def call(self, ids):
        return ops.one_hot(ops.cast(ids, "int32"), self.num_tokens, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.num_tokens)

    def get_config(self):
        return {**super().get_config(), "num_tokens": self.num_tokens}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Attention(keras.layers.Layer):
    """Global attention over encoder outputs, combined as Luong et al. (2015) do.

    Scores: "dot" (h_t . h_s), "general" (h_t W h_s), "bahdanau" (v . tanh(W1 h_t + W2 h_s),
    the additive score). The context vector and the decoder output are combined into the
    attentional vector tanh(W_c [c_t; h_t]), which feeds the softmax.

    Args:
        units: size of the decoder outputs and of the attentional vector.
        score: "dot", "general" or "bahdanau".

    Call args:
        decoder_outputs: (batch, target_steps, units).
        memory: encoder outputs (batch, source_steps, units).
        source_mask: bool (batch, source_steps), False at padding.

    Returns:
        (attentional (batch, target_steps, units), weights (batch, target_steps, source_steps)).
    """

    def __init__(self, units: int, score: str = "general", **kwargs):
        super().__init__(**kwargs)
        if score not in ATTENTION_SCORES:
            raise ValueError(f"attention score must be one of {ATTENTION_SCORES}, got {score!r}")
        self.units = units
        self.score = score
        if score == "general":
            self.score_dense = keras.layers.Dense(units, use_bias=False, name="score_dense")
        elif score == "bahdanau":
            self.query_dense = keras.layers.Dense(units, use_bias=False, name="query_dense")
            self.key_dense = keras.layers.Dense(units, use_bias=False, name="key_dense")
            self.score_vector = keras.layers.Dense(1, use_bias=False, name="score_vector")
        self.combine = keras.layers.Dense(units, activation="tanh", use_bias=False, name="combine")

    def build(self, decoder_outputs_shape, memory_shape, source_mask_shape=None):
        if self.score == "general":
            self.score_dense.build(memory_shape)
        elif self.score == "bahdanau":
            self.query_dense.build(decoder_outputs_shape)
            self.key_dense.build(memory_shape)
            self.score_vector.build((*decoder_outputs_shape[:-1], self.units))
        self.combine.build(
            (*decoder_outputs_shape[:-1], decoder_outputs_shape[-1] + memory_shape[-1])
        )

    def call(self, decoder_outputs, memory, source_mask):
        if self.score == "bahdanau":
            query = self.query_dense(decoder_outputs)[:, :, None, :]  # (batch, t, 1, units)
            keys = self.key_dense(memory)[:, None, :, :]  # (batch, 1, s, units)
            scores = self.score_vector(ops.tanh(query + keys))[..., 0]  # (batch, t, s)
        else:
            keys = self.score_dense(memory) if self.score == "general" else memory
            scores = ops.einsum("btu,bsu->bts", decoder_outputs, keys)  # (batch, t, s)
        scores = ops.where(source_mask[:, None, :], scores, -1e9)
        weights = ops.softmax(scores, axis=-1)  # (batch, t, s)
        context = ops.einsum("bts,bsu->btu", weights, memory)  # (batch, t, units)
        attentional = self.combine(ops.concatenate([context, decoder_outputs], axis=-1))
        return attentional, weights

    def compute_mask(self, inputs, mask=None):
        # Padding is masked explicitly (sample weights and source_mask), not by Keras masks.
        return None

    def compute_output_shape(self, decoder_outputs_shape, memory_shape, source_mask_shape=None):
        return decoder_outputs_shape, (*decoder_outputs_shape[:-1], memory_shape[1])

    def get_config(self):
        return {**super().get_config(), "units": self.units, "score": self.score}


@keras.saving.register_keras_serializable(package=PACKAGE)
class InputFeedingDecoder(keras.layers.Layer):
    """Stacked recurrent decoder whose input at step t includes the attentional vector of t-1.

    Input feeding (Luong et al., 2015) makes each step depend on the previous step's
    attention, so the decoder runs step by step (one `keras.ops.scan`) in training too; the
    same code runs one step at a time when decoding, which keeps both graphs in agreement.

    Args:
        units: recurrent state size (= attentional vector size).
        cell: "lstm" or "gru".
        num_layers: stacked recurrent cells.
        score: attention score, as for `Attention`.
        dropout: dropout between stacked cells.
        kernel_initializer, recurrent_initializer: the cells' (Keras's defaults when None).

    Call args:
        inputs: (batch, steps, features) embedded target tokens.
        states: flat list of per-layer states, then the previous attentional vector.
        memory: encoder outputs (batch, source_steps, units).
        source_mask: bool (batch, source_steps).

    Returns:
        [attentional (batch, steps, units), weights (batch, steps, source_steps), *new states].
    """

    def __init__(
        self,
        units: int,
        cell: str = "lstm",
        num_layers: int = 1,
        score: str = "general",
        dropout: float = 0.0,
        kernel_initializer=None,
        recurrent_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = units
        self.cell = cell
        self.num_layers = num_layers
        self.score = score
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer or "glorot_uniform")
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer or "orthogonal")
        kind = keras.layers.LSTMCell if cell == "lstm" else keras.layers.GRUCell
        self.cells = [  # each cell its own copies: an initializer instance repeats its draws
            kind(
                units,
                name=f"cell_{i}",
                kernel_initializer=_copy(self.kernel_initializer),
                recurrent_initializer=_copy(self.recurrent_initializer),
            )
            for i in range(num_layers)
        ]
        self.attention = Attention(units, score, name="attention")
        self.dropout_layer = keras.layers.Dropout(dropout) if dropout else None
        self.state_size = 2 if cell == "lstm" else 1

    def build(self, inputs_shape, states_shape=None, memory_shape=None, source_mask_shape=None):
        features = inputs_shape[-1] + self.units
        for cell in self.cells:
            cell.build((None, features))
            features = self.units
        self.attention.build((None, 1, self.units), (None, None, self.units))

    def call(self, inputs, states, memory, source_mask, training=None):
        states = list(states)
        feed = states[-1]  # (batch, units)
        grouped = [
            states[i : i + self.state_size] for i in range(0, len(states) - 1, self.state_size)
        ]

        time_major = ops.transpose(inputs, (1, 0, 2))  # (steps, batch, features)
        # Dropout masks are drawn before the loop: random state cannot change inside a scan.
        keep = ops.ones((*ops.shape(time_major)[:2], max(self.num_layers - 1, 1), self.units))
        if self.dropout_layer is not None:
            keep = self.dropout_layer(keep, training=training)  # (steps, batch, layers-1, units)

        def step(carry, x):  # x: (batch, features), keep: (batch, layers - 1, units)
            grouped, feed = carry
            x, keep = x
            y = ops.concatenate([x, feed], axis=-1)
            new_grouped = []
            for i, (cell, cell_states) in enumerate(zip(self.cells, grouped, strict=True)):
                if i:
                    y = y * keep[:, i - 1]
                y, cell_states = cell(y, list(cell_states), training=training)
                new_grouped.append(
                    list(cell_states) if isinstance(cell_states, (list, tuple)) else [cell_states]
                )
            attentional, weights = self.attention(y[:, None, :], memory, source_mask)
            feed = attentional[:, 0]  # (batch, units)
            return (new_grouped, feed), (feed, weights[:, 0])

        (grouped, feed), (outputs, weights) = ops.scan(step, (grouped, feed), (time_major, keep))
        outputs = ops.transpose(outputs, (1, 0, 2))  # (batch, steps, units)
        weights = ops.transpose(weights, (1, 0, 2))  # (batch, steps, source_steps)
        return [outputs, weights] + [s for group in grouped for s in group] + [feed]

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_spec(self, inputs, states, memory, source_mask, training=None):
        batch, steps = inputs.shape[0], inputs.shape[1]
        outputs = keras.KerasTensor((batch, steps, self.units))
        weights = keras.KerasTensor((batch, steps, memory.shape[1]))
        new_states = [keras.KerasTensor((batch, self.units)) for _ in states]
        return [outputs, weights] + new_states

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "cell": self.cell,
            "num_layers": self.num_layers,
            "score": self.score,
            "dropout": self.dropout,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
        }


def _copy(initializer):
    """A new initializer made from `initializer`'s config (unseeded ones draw a new seed)."""
    return keras.initializers.deserialize(keras.initializers.serialize(initializer))


@keras.saving.register_keras_serializable(package=PACKAGE)
class InitialFeed(keras.layers.Layer):
    """The input-feeding decoder's first 'previous attentional vector': zeros (batch, units)."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def call(self, memory):
        return ops.zeros((ops.shape(memory)[0], self.units), dtype=memory.dtype)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, memory_shape):
        return (memory_shape[0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}
