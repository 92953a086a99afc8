"""The Transformer's layers (pre-layer-norm): positions, encoder and decoder stacks, caches."""

from __future__ import annotations

import math

import keras
from keras import ops

from tandem.models.layers import PACKAGE, maybe_dropout, optional_dropout

NEG = -1e9  # score of a key that may not be attended to (exp underflows to exactly 0)
# `ops.arange` is given its start everywhere here: jax2onnx (`tandem export`) converts no
# arange whose stop is left out.


def sinusoids(positions, width: int):
    """Positions (...) int -> sinusoidal encodings (..., width): sines, then cosines."""
    half = width // 2
    rates = ops.exp(ops.arange(0, half, dtype="float32") * (-math.log(10000.0) / half))
    angles = ops.cast(positions, "float32")[..., None] * rates  # (..., half)
    return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)


def attend(query, keys, values, allowed, heads: int, dropout=None, training=None):
    """Scaled dot-product attention over `heads` heads.

    Args:
        query: (batch, t, units); keys, values: (batch, s, units).
        allowed: bool, broadcastable to (batch, t, s): which keys each query may see.

    Returns:
        (outputs (batch, t, units), weights (batch, heads, t, s)).
    """
    batch, t, units = ops.shape(query)[0], ops.shape(query)[1], ops.shape(query)[2]
    size = units // heads

    def split(x):  # (batch, steps, units) -> (batch, steps, heads, size)
        return ops.reshape(x, (ops.shape(x)[0], ops.shape(x)[1], heads, size))

    scores = ops.einsum("bthd,bshd->bhts", split(query), split(keys)) / math.sqrt(size)
    scores = ops.where(allowed[:, None], scores, NEG)  # (batch, heads, t, s)
    weights = ops.softmax(scores, axis=-1)
    dropped = dropout(weights, training=training) if dropout is not None else weights
    outputs = ops.einsum("bhts,bshd->bthd", dropped, split(values))
    return ops.reshape(outputs, (batch, t, units)), weights


def write_cache(cache, new, position):
    """Write `new` (batch, t, units) into `cache` (batch, length, units) at rows
    position .. position + t - 1 of each sequence (`position`: int (batch,))."""
    t, length = ops.shape(new)[1], ops.shape(cache)[1]
    rows = position[:, None] + ops.arange(0, t, dtype=position.dtype)[None, :]  # (batch, t)
    where = ops.one_hot(rows, length, dtype=cache.dtype)  # (batch, t, length)
    kept = 1.0 - ops.sum(where, axis=1)[..., None]  # (batch, length, 1)
    return cache * kept + ops.einsum("btl,btu->blu", where, new)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Positions(keras.layers.Layer):
    """Token embeddings (batch, t, units) -> scaled by sqrt(units) plus sinusoidal positions.

    Call args:
        embeddings: (batch, t, units).
        offset: int (batch,), the position of the first step (decoding); None: 0.
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def call(self, embeddings, offset=None):
        # 0 .. t - 1 counted, not ops.arange(t): ONNX export traces t as a symbol.
        steps = ops.cumsum(ops.ones_like(embeddings[:1, :, 0], dtype="int32"), axis=1) - 1  # (1, t)
        positions = steps if offset is None else offset[:, None] + steps  # (batch | 1, t)
        encodings = ops.cast(sinusoids(positions, self.units), embeddings.dtype)
        return embeddings * math.sqrt(self.units) + encodings

    def compute_mask(self, inputs, mask=None):
        return None  # padding is masked explicitly, not by Keras masks

    def compute_output_shape(self, embeddings_shape, offset_shape=None):
        return embeddings_shape

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _dense(units: int, name: str, **kwargs):
    return keras.layers.Dense(units, name=name, **kwargs)


class _Blocks(keras.layers.Layer):
    """What the encoder and decoder stacks share: per block, layer norms and projections
    (named by `parts` and `kinds`) and a feed-forward pair; a final layer norm; dropout."""

    def __init__(self, units, heads, ff_dim, num_layers, dropout, parts, kinds, **kwargs):
        super().__init__(**kwargs)
        self.units, self.heads, self.ff_dim = units, heads, ff_dim
        self.num_layers, self.dropout = num_layers, dropout
        self.norms = [
            keras.layers.LayerNormalization(epsilon=1e-6, name=f"norm_{i}_{part}")
            for i in range(num_layers)
            for part in parts
        ]
        self.projections = [
            _dense(units, f"{kind}_{i}") for i in range(num_layers) for kind in kinds
        ]
        self.feed_forward = [
            layer
            for i in range(num_layers)
            for layer in (
                _dense(ff_dim, f"feed_forward_{i}_in", activation="relu"),
                _dense(units, f"feed_forward_{i}_out"),
            )
        ]
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")
        self.drop = optional_dropout(dropout)

    def build(self, *shapes, **kwargs):
        # Every size is an argument: the weights never depend on the call's shapes.
        _build_all(self.norms + [self.final_norm], self.units)
        _build_all(self.projections, self.units)
        for i, layer in enumerate(self.feed_forward):
            layer.build((None, self.units if i % 2 == 0 else self.ff_dim))

    def _feed_forward(self, i: int, h, training):
        inner, outer = self.feed_forward[2 * i : 2 * i + 2]
        return maybe_dropout(
            self.drop, outer(maybe_dropout(self.drop, inner(h), training)), training
        )

    def compute_mask(self, inputs, mask=None):
        return None  # padding is masked explicitly, not by Keras masks

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "heads": self.heads,
            "ff_dim": self.ff_dim,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class TransformerEncoder(_Blocks):
    """Stacked pre-norm self-attention and feed-forward blocks, then a final layer norm.

    Args:
        units: model width (embeddings, attention, block outputs).
        heads: attention heads (units must divide by it).
        ff_dim: inner width of the feed-forward blocks.
        num_layers: stacked blocks.
        dropout: on attention weights, block outputs and the feed-forward inner layer.

    Call args:
        inputs: (batch, s, units); source_mask: bool (batch, s), False at padding.

    Returns:
        memory (batch, s, units).
    """

    def __init__(self, units: int, heads: int, ff_dim: int, num_layers: int, dropout=0.0, **kw):
        parts = ("attention", "feed_forward")
        super().__init__(units, heads, ff_dim, num_layers, dropout, parts, "qkvo", **kw)

    def call(self, inputs, source_mask, training=None):
        x, allowed = inputs, source_mask[:, None, :]  # (batch, 1, s): keys that are text
        for i in range(self.num_layers):
            q, k, v, o = self.projections[4 * i : 4 * i + 4]
            h = self.norms[2 * i](x)
            h, _ = attend(q(h), k(h), v(h), allowed, self.heads, self.drop, training)
            x = x + maybe_dropout(self.drop, o(h), training)
            x = x + self._feed_forward(i, self.norms[2 * i + 1](x), training)
        return self.final_norm(x)

    def compute_output_shape(self, inputs_shape, source_mask_shape=None):
        return inputs_shape


@keras.saving.register_keras_serializable(package=PACKAGE)
class MemoryProjection(keras.layers.Layer):
    """Memory (batch, s, units) -> each decoder layer's cross-attention keys and values,
    [k_0, v_0, k_1, v_1, ...] (batch, s, units) each: computed once per source, not per step.

    Args:
        units: model width.
        num_layers: decoder layers.
    """

    def __init__(self, units: int, num_layers: int, **kwargs):
        super().__init__(**kwargs)
        self.units, self.num_layers = units, num_layers
        self.projections = [
            _dense(units, f"cross_{kind}_{i}") for i in range(num_layers) for kind in "kv"
        ]

    def build(self, memory_shape=None):
        _build_all(self.projections, self.units)

    def call(self, memory):
        return [projection(memory) for projection in self.projections]

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, memory_shape):
        return [(*memory_shape[:-1], self.units) for _ in self.projections]

    def get_config(self):
        return {**super().get_config(), "units": self.units, "num_layers": self.num_layers}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TransformerDecoder(_Blocks):
    """Stacked pre-norm blocks of causal self-attention, cross-attention and feed-forward.

    Teacher-forced (no cache) every step sees itself and the steps before it. With a cache,
    the steps are written into it at `position` and attend to everything written before
    them: one step at a time when decoding, or several at once; the arithmetic is the same.

    Args: as `TransformerEncoder`.

    Call args:
        inputs: (batch, t, units) embedded target tokens with positions.
        cross: [k_0, v_0, ...] from `MemoryProjection` (batch, s, units) each.
        source_mask: bool (batch, s).
        cache: None, or [keys_0, values_0, ...] (batch, length, units) each.
        position: int (batch,), where the steps go in the cache (with `cache`).

    Returns:
        [outputs (batch, t, units), weights (batch, t, s), *cache, position + t]: the cache
        with the steps written in (without a cache given: the steps' own keys and values,
        (batch, t, units) each, and position 0). `weights` is the last layer's
        cross-attention, the mean of its heads.
    """

    def __init__(self, units: int, heads: int, ff_dim: int, num_layers: int, dropout=0.0, **kw):
        parts = ("self_attention", "cross_attention", "feed_forward")
        # Per block: self-attention q, k, v, o, then the cross-attention query and output.
        kinds = ("q", "k", "v", "o", "cross_q", "cross_o")
        super().__init__(units, heads, ff_dim, num_layers, dropout, parts, kinds, **kw)

    def call(self, inputs, cross, source_mask, cache=None, position=None, training=None):
        x, t = inputs, ops.shape(inputs)[1]
        if cache is None:
            allowed = ops.tril(ops.ones((t, t), dtype="bool"))[None]  # (1, t, t)
        else:
            length = ops.shape(cache[0])[1]
            rows = position[:, None] + ops.arange(0, t, dtype=position.dtype)[None, :]  # (b, t)
            columns = ops.arange(0, length, dtype=position.dtype)[None, None, :]  # (1, 1, length)
            allowed = columns <= rows[:, :, None]  # (batch, t, length)
        new_cache, weights = [], None
        for i in range(self.num_layers):
            q, k, v, o, cross_q, cross_o = self.projections[6 * i : 6 * i + 6]
            h = self.norms[3 * i](x)
            keys, values = k(h), v(h)
            if cache is not None:
                keys = write_cache(cache[2 * i], keys, position)
                values = write_cache(cache[2 * i + 1], values, position)
            new_cache += [keys, values]
            h, _ = attend(q(h), keys, values, allowed, self.heads, self.drop, training)
            x = x + maybe_dropout(self.drop, o(h), training)
            h = self.norms[3 * i + 1](x)
            h, weights = attend(
                cross_q(h),
                cross[2 * i],
                cross[2 * i + 1],
                source_mask[:, None, :],
                self.heads,
                self.drop,
                training,
            )
            x = x + maybe_dropout(self.drop, cross_o(h), training)
            x = x + self._feed_forward(i, self.norms[3 * i + 2](x), training)
        if cache is None:
            position = ops.zeros((ops.shape(inputs)[0],), dtype="int32")
        # weights: (batch, t, s), the mean of the heads
        return [self.final_norm(x), ops.mean(weights, axis=1), *new_cache, position + t]

    def compute_output_spec(
        self, inputs, cross, source_mask, cache=None, position=None, training=None
    ):
        batch, t = inputs.shape[0], inputs.shape[1]
        outputs = [
            keras.KerasTensor((batch, t, self.units), dtype=inputs.dtype),
            keras.KerasTensor((batch, t, source_mask.shape[1]), dtype=inputs.dtype),
        ]
        if cache is None:
            shapes = [(batch, t, self.units)] * (2 * self.num_layers)
        else:
            shapes = [c.shape for c in cache]
        new_cache = [keras.KerasTensor(shape, dtype=inputs.dtype) for shape in shapes]
        return outputs + new_cache + [keras.KerasTensor((batch,), dtype="int32")]


@keras.saving.register_keras_serializable(package=PACKAGE)
class EmptyCache(keras.layers.Layer):
    """Memory (batch, s, units) -> the decoder's first cache: 2 * num_layers zero tensors
    (batch, length, units) and the position 0 (batch,) int32.

    Args:
        units: model width.
        num_layers: decoder layers.
        length: most steps the cache holds.
    """

    def __init__(self, units: int, num_layers: int, length: int, **kwargs):
        super().__init__(**kwargs)
        self.units, self.num_layers, self.length = units, num_layers, length

    def call(self, memory):
        batch = ops.shape(memory)[0]
        zeros = ops.zeros((batch, self.length, self.units), dtype=memory.dtype)
        return [zeros] * (2 * self.num_layers) + [ops.zeros((batch,), dtype="int32")]

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_spec(self, memory):
        batch = memory.shape[0]
        cache = keras.KerasTensor((batch, self.length, self.units), dtype=memory.dtype)
        position = keras.KerasTensor((batch,), dtype="int32")
        return [cache] * (2 * self.num_layers) + [position]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "num_layers": self.num_layers,
            "length": self.length,
        }


def _build_all(layers, units: int) -> None:
    for layer in layers:
        layer.build((None, units))
