"""The beam search's length penalty at its last step, shared by tandem's compiled search and the
exported graphs' numpy one (plain Python: no Keras, no JAX)."""

from __future__ import annotations

import math

FLOAT32_LOG_MAX = math.log(3.4e38)  # the length penalty is a float32


def final_length_penalty(beam_size: int, nbest: int, alpha: float, max_length: int) -> float:
    """The length penalty at `max_length`, after checking the search's settings."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if not 1 <= nbest <= beam_size:
        raise ValueError(f"nbest must be between 1 and beam_size={beam_size}, got {nbest}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    log_final_penalty = alpha * math.log((5.0 + max_length) / 6.0)
    if log_final_penalty >= FLOAT32_LOG_MAX:
        raise ValueError(f"alpha {alpha}: the length penalty at {max_length} steps overflows")
    return math.exp(log_final_penalty)
