"""Sampling: draw each next token from the temperature-scaled, optionally top-k, distribution."""

from __future__ import annotations

import keras
from keras import ops

from tandem.data.vocabulary import UNK_ID
from tandem.decoding.banned import NEVER_OUTPUT, without
from tandem.decoding.loop import token_loop

# What no search outputs, and `<unk>`, which a sample would show as such.
NEVER_SAMPLED = (*NEVER_OUTPUT, UNK_ID)
# Spreads the seeds apart before the step number is added to them (2**32 / golden ratio).
SEED_SPREAD = 0x9E3779B1


def sample(
    step,
    state,
    batch_size: int,
    max_length: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed=0,
    streams=None,
):
    """Decode a batch by sampling each next token, until every sequence has ended. Padding,
    start and unknown ids are never drawn.

    Every row draws from its own random stream: at step t, row r draws with the key
    `(seed * SEED_SPREAD + t, streams[r])` (uint32 words). So a row's tokens depend on the
    seed, its stream number and its own log-probs, not on the batch it is in or on its row:
    a caller that numbers rows by their text (`Translator` uses the text's position in the
    input) gets the same samples at any batch size. The keys are threaded through the
    `keras.ops.while_loop`, so the loop compiles whole under `compile_stateless`. Tensor
    seeds are accepted by `keras.random` on the JAX backend only: other backends, which run
    the loop eagerly, draw the whole batch from a `keras.random.SeedGenerator` seeded from
    `seed` (the same seed and batch give the same tokens there, but not the JAX backend's).

    Args:
        step: `(tokens (batch,), state) -> (log_probs (batch, vocab), state)`.
        state: the decoder state after encoding the sources (any nest of arrays).
        batch_size: number of sequences.
        max_length: most tokens to generate per sequence, END_ID included.
        temperature: > 0; log-probs are divided by it (low: near greedy, high: flatter).
        top_k: if given (>= 1), sample only among the k most probable tokens.
        seed: the random seed, an int or a uint32 scalar (compiled callers pass an array, to
            change the seed without recompiling).
        streams: (batch,) stream numbers, ints >= 0; default `0 .. batch_size - 1`.

    Returns:
        `(tokens, scores)`: int32 (batch, max_length) generated ids, END_ID included where
        reached, PAD_ID after it; float32 (batch,) the model's log-probabilities of those
        tokens (before temperature and top-k), summed up to the end.

    Example:
        >>> tokens, scores = sample(model.step, model.encode(source_ids), batch_size=2,
        ...                         max_length=20, temperature=0.8, top_k=10, seed=1)
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    if isinstance(seed, int):
        seed = seed % 2**32
    spread = ops.convert_to_tensor(seed, "uint32") * ops.convert_to_tensor(SEED_SPREAD, "uint32")
    streams = ops.arange(batch_size) if streams is None else streams
    draw = _drawer(spread, ops.cast(streams, "uint32"), batch_size)

    def pick(log_probs, index):  # log_probs: (batch, vocab)
        # Shifted so that the best allowed token is at 0 before scaling: at any temperature
        # it stays finite (others may reach -inf), and the banned ones are -inf, never drawn.
        allowed = without(log_probs, NEVER_SAMPLED, fill=float("-inf"))
        logits = (allowed - ops.max(allowed, axis=-1, keepdims=True)) / temperature
        if top_k is None:
            return draw(logits, index)  # (batch,)
        # Sampling among the k best is keeping them and setting the others to -inf.
        k = min(top_k, logits.shape[-1])
        top_logits, top_ids = ops.top_k(logits, k)  # (batch, k)
        choice = ops.cast(draw(top_logits, index), "int32")  # (batch,)
        return ops.take_along_axis(top_ids, choice[:, None], axis=1)[:, 0]

    return token_loop(step, state, batch_size, max_length, pick)


def _drawer(spread, streams, batch_size: int):
    """`draw(logits (batch, n), index) -> (batch,)` indices, row r from its own stream."""
    if keras.backend.backend() != "jax":
        generator = keras.random.SeedGenerator(int(ops.convert_to_numpy(spread)) % 2**31)
        return lambda logits, index: keras.random.categorical(logits, 1, seed=generator)[:, 0]

    def draw_row(row):
        row_logits, key = row
        return keras.random.categorical(row_logits[None, :], 1, seed=key)[0, 0]

    def draw(logits, index):
        word = ops.broadcast_to(spread + ops.cast(index, "uint32"), (batch_size,))
        keys = ops.stack([word, streams], axis=1)  # (batch, 2)
        return ops.vectorized_map(draw_row, (logits, keys))

    return draw
