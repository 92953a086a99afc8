"""The one facade that the command line, the server and Python users call."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from tandem.data.batching import encode_sources
from tandem.decoding import compile_stateless, greedy_search
from tandem.errors import TandemError
from tandem.model_dir import LoadedModel, load_model_dir

DEFAULT_BATCH_SIZE = 64
OVERLONG_CHOICES = ("truncate", "error")


class Translator:
    """Translate text with a trained tandem model.

    Args:
        loaded: a model directory read by `load_model_dir`.

    Example:
        >>> translator = Translator.from_dir("runs/demo/model")  # doctest: +SKIP
        >>> translator.translate(["Go.", "Hello!"])  # doctest: +SKIP
        ['Va !', 'Bonjour !']
    """

    def __init__(self, loaded: LoadedModel):
        self.model = loaded.model
        self.source_vocab = loaded.source_vocab
        self.target_vocab = loaded.target_vocab
        self.config = loaded.config
        self.manifest = loaded.manifest
        self.path = loaded.path
        self._compiled: dict[tuple, object] = {}

    @classmethod
    def from_dir(cls, path: str | Path) -> Translator:
        """Load a model directory written by `tandem train`."""
        return cls(load_model_dir(path))

    # The example's three graphs, for users who write their own loop.
    @property
    def training_model(self):
        return self.model.training_model

    @property
    def encoder_model(self):
        return self.model.encoder_model

    @property
    def decoder_model(self):
        return self.model.decoder_model

    @property
    def max_source_length(self) -> int:
        return self.model.dims.max_encoder_seq_length

    @property
    def max_target_length(self) -> int:
        return self.model.dims.max_decoder_seq_length

    def translate(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_length: int | None = None,
        overlong: str = "truncate",
    ) -> list[str]:
        """Translate a list of texts with batched greedy decoding.

        Args:
            texts: source sentences; an empty one gives an empty translation.
            batch_size: sentences decoded together.
            max_length: most target tokens per sentence; default the model's training maximum.
            overlong: "truncate" (with a warning) or "error" for sources longer than the
                longest training source.

        Returns:
            One translation per text, in order.
        """
        return list(
            self.translate_stream(
                texts, batch_size=batch_size, max_length=max_length, overlong=overlong
            )
        )

    def translate_stream(
        self,
        texts: Iterable[str],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_length: int | None = None,
        overlong: str = "truncate",
    ) -> Iterator[str]:
        """Like `translate`, but lazily: reads `batch_size` texts at a time, yields in order."""
        if batch_size < 1:
            raise TandemError(f"batch size must be a positive integer, got {batch_size}")
        if overlong not in OVERLONG_CHOICES:
            raise TandemError(f"overlong must be one of {', '.join(OVERLONG_CHOICES)}")
        max_length = max_length or self.max_target_length
        if max_length < 1:
            raise TandemError(f"max length must be a positive integer, got {max_length}")
        batch: list[str] = []
        for text in texts:
            batch.append(text)
            if len(batch) == batch_size:
                yield from self._translate_batch(batch, batch_size, max_length, overlong)
                batch = []
        if batch:
            yield from self._translate_batch(batch, batch_size, max_length, overlong)

    def _translate_batch(
        self, texts: list[str], batch_size: int, max_length: int, overlong: str
    ) -> list[str]:
        source_ids, lengths = encode_sources(texts, self.source_vocab, self.max_source_length)
        self._check_lengths(texts, lengths, overlong)
        # A fixed batch shape keeps one compiled program per (batch_size, max_length).
        padded = np.zeros((batch_size, self.max_source_length), dtype=np.int32)
        padded[: len(texts)] = source_ids
        output_ids = np.asarray(self._decoder(batch_size, max_length)(padded))
        return [
            self.target_vocab.decode(ids) if text.strip() else ""
            for text, ids in zip(texts, output_ids, strict=False)
        ]

    def _check_lengths(self, texts: list[str], lengths: list[int], overlong: str) -> None:
        for text, length in zip(texts, lengths, strict=True):
            if length > self.max_source_length:
                message = (
                    f"source of {length} tokens is longer than the model's maximum of "
                    f"{self.max_source_length}: {text[:40]!r}"
                )
                if overlong == "error":
                    raise TandemError(message)
                warnings.warn(message + " (truncated)", stacklevel=4)

    def _decoder(self, batch_size: int, max_length: int):
        key = ("greedy", batch_size, max_length)
        if key not in self._compiled:
            model = self.model

            def decode(source_ids):  # (batch, max_encoder_seq_length) -> (batch, max_length)
                state = model.encode(source_ids)
                return greedy_search(model.step, state, batch_size, max_length)

            self._compiled[key] = compile_stateless(decode, model.variables)
        return self._compiled[key]

    def is_within_training_range(self, text: str) -> bool:
        """True when every token of `text` is known and it is no longer than training sources."""
        tokens = self.source_vocab.tokenize(text)
        return len(tokens) <= self.max_source_length and not self.source_vocab.unknown_tokens(text)
