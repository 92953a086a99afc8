"""Sampling: draw each next token from the temperature-scaled, optionally top-k, distribution."""

from __future__ import annotations

import keras
from keras import ops

from tandem.data.vocabulary import END_ID, PAD_ID, START_ID, UNK_ID
from tandem.decoding.banned import NEVER_OUTPUT, without

# What no search outputs, and `<unk>`, which a sample would show as such.
NEVER_SAMPLED = (*NEVER_OUTPUT, UNK_ID)


def sample(
    step,
    state,
    batch_size: int,
    max_length: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
):
    """Decode a batch by sampling each next token, until every sequence has ended. Padding,
    start and unknown ids are never drawn.

    The random seed is a (2,) uint32 tensor threaded through the `keras.ops.while_loop`
    and advanced by [0, 1] each step (what `keras.random.SeedGenerator` does), so the
    loop stays functional: it compiles whole under `compile_stateless` and the same seed
    gives the same tokens, compiled or eager. Tensor seeds are accepted by `keras.random`
    on the JAX backend only: other backends, which run the loop eagerly, draw from a
    `keras.random.SeedGenerator` seeded from the same (2,) seed instead (the same seed
    gives the same tokens there too, but not the JAX backend's).

    Args:
        step: `(tokens (batch,), state) -> (log_probs (batch, vocab), state)`.
        state: the decoder state after encoding the sources (any nest of arrays).
        batch_size: number of sequences.
        max_length: most tokens to generate per sequence, END_ID included.
        temperature: > 0; log-probs are divided by it (low: near greedy, high: flatter).
        top_k: if given (>= 1), sample only among the k most probable tokens.
        seed: the random seed, an int or a (2,) uint32 array; the same seed gives the same
            output.

    Returns:
        int32 tensor (batch, max_length) of generated ids, END_ID included where reached,
        PAD_ID after it.

    Example:
        >>> tokens = sample(model.step, model.encode(source_ids), batch_size=2,
        ...                 max_length=20, temperature=0.8, top_k=10, seed=1)
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    output = ops.full((batch_size, max_length), PAD_ID, dtype="int32")
    tokens = ops.full((batch_size,), START_ID, dtype="int32")
    finished = ops.zeros((batch_size,), dtype="bool")
    if isinstance(seed, int):
        seed_state = ops.convert_to_tensor([seed % 2**32, 0], dtype="uint32")
    else:  # a (2,) uint32 array: lets compiled callers change the seed without recompiling
        seed_state = ops.cast(seed, "uint32")
    seed_increment = ops.convert_to_tensor([0, 1], dtype="uint32")
    generator = None
    if keras.backend.backend() != "jax":
        first, second = (int(v) for v in ops.convert_to_numpy(seed_state))
        generator = keras.random.SeedGenerator((first ^ (second * 0x9E3779B1)) % 2**31)

    def cond(index, output, tokens, finished, seed_state, state):
        return ops.logical_and(index < max_length, ops.logical_not(ops.all(finished)))

    def body(index, output, tokens, finished, seed_state, state):
        log_probs, state = step(tokens, state)  # (batch, vocab)
        logits = without(log_probs / temperature, NEVER_SAMPLED)
        draw_seed = seed_state if generator is None else generator
        if top_k is None:
            drawn = keras.random.categorical(logits, 1, seed=draw_seed)  # (batch, 1)
        else:
            # Sampling among the k best is keeping them and setting the others to -inf.
            k = min(top_k, logits.shape[-1])
            top_logits, top_ids = ops.top_k(logits, k)  # (batch, k)
            choice = keras.random.categorical(top_logits, 1, seed=draw_seed)  # (batch, 1)
            drawn = ops.take_along_axis(top_ids, choice, axis=1)  # (batch, 1)
        drawn = ops.cast(drawn[:, 0], "int32")  # (batch,)
        drawn = ops.where(finished, PAD_ID, drawn)
        output = ops.slice_update(output, (0, index), drawn[:, None])
        finished = ops.logical_or(finished, drawn == END_ID)
        return index + 1, output, drawn, finished, seed_state + seed_increment, state

    loop_vars = (ops.convert_to_tensor(0, "int32"), output, tokens, finished, seed_state, state)
    _, output, _, _, _, _ = ops.while_loop(cond, body, loop_vars)
    return output
