"""The server's settings and limits: one frozen dataclass, its defaults written once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeSettings:
    """How `tandem serve` batches and what it refuses; each field is a flag of the same name.

    Example:
        >>> ServeSettings(max_batch_size=8).max_wait_ms
        0.0
    """

    # Sentences decoded in one batch; requests waiting together are grouped up to this.
    max_batch_size: int = 32
    # How long a batch that is not full waits for more requests (milliseconds); at 0 the
    # worker decodes what is queued at once, and what arrives meanwhile is the next batch.
    max_wait_ms: float = 0.0
    # Requests waiting to be decoded; beyond this, new ones get 503 with Retry-After.
    max_queue: int = 256
    # Largest request body (bytes); beyond it, 413.
    max_body_bytes: int = 65_536
    # Most sentences in one request; beyond it, 422.
    max_inputs: int = 32
    # Most characters in one sentence; beyond it, 422.
    max_input_chars: int = 1_000
    # Widest beam a request may ask for; beyond it, 422.
    max_beam_size: int = 16
    # Largest max_length (output tokens) a request may ask for; beyond it, 422.
    max_decode_length: int = 256
    # Longest a request may wait for its translations (seconds); beyond it, 504.
    decode_timeout_s: float = 30.0

    def __post_init__(self):
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                if name == "max_wait_ms" and value == 0:
                    continue
                raise ValueError(f"{name} must be a positive number, got {value!r}")
