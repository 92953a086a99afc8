"""The one facade that the command line and Python users call."""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from keras import ops

from tandem.config import DecodeConfig, decode_config
from tandem.data.batching import encode_sources
from tandem.data.vocabulary import END_ID, START_ID
from tandem.decoding import beam_search, compile_stateless, greedy_search, sample
from tandem.errors import OverlongSourceError, OverlongSourceWarning
from tandem.model_dir import LoadedModel, load_model_dir

# Sentences read ahead and sorted by length, so a batch's sentences end at similar steps.
WINDOW_BATCHES = 16
# Batches decoded at the same time.
DECODE_THREADS = max(1, min(2, os.cpu_count() or 1))
# Masked models pad each batch's sources to a multiple of this, not to the longest source.
SOURCE_BUCKET = 8
# Compiled programs kept; beyond, the least recently used is dropped (each setting compiles).
COMPILED_PROGRAMS = 32


@dataclass(frozen=True)
class Strategy:
    """How `Translator` compiles and calls one decoding strategy.

    Every strategy's compiled search returns one shape: tokens (batch, nbest, max_length) and
    scores (batch, nbest), best first; greedy and sampling give nbest 1. The `decoding`
    functions keep their own contracts, adapted here.
    """

    # The DecodeConfig fields the compiled search reads besides batch_size: with the
    # strategy, the batch size and max_length, they key the compiled program (one per shape).
    settings: tuple[str, ...]
    # (model, decode, max_length) -> search(source_ids (batch, steps), *inputs).
    build: Callable[..., Callable]
    # (decode, streams (batch,)) -> the search's arguments after the source ids; arrays, so
    # that a new seed reuses the compiled program.
    inputs: Callable[[DecodeConfig, np.ndarray], tuple] = lambda decode, streams: ()


def _one_best(tokens, scores):
    """(batch, max_length), (batch,) -> (batch, 1, max_length), (batch, 1)."""
    return ops.expand_dims(tokens, 1), ops.expand_dims(scores, 1)


def _greedy(model, decode: DecodeConfig, max_length: int) -> Callable:
    def search(source_ids):
        state = model.encode(source_ids, max_length)
        tokens, scores = greedy_search(model.step, state, decode.batch_size, max_length)
        return _one_best(tokens, scores)

    return search


def _beam(model, decode: DecodeConfig, max_length: int) -> Callable:
    def search(source_ids):
        return beam_search(
            model.step,
            model.encode(source_ids, max_length),
            decode.batch_size,
            max_length,
            beam_size=decode.beam_size,
            alpha=decode.alpha,
            nbest=decode.nbest,
        )  # (batch, nbest, max_length), (batch, nbest)

    return search


def _sample(model, decode: DecodeConfig, max_length: int) -> Callable:
    def search(source_ids, seed, streams):
        tokens, scores = sample(
            model.step,
            model.encode(source_ids, max_length),
            decode.batch_size,
            max_length,
            temperature=decode.temperature,
            top_k=decode.top_k,
            seed=seed,
            streams=streams,
        )
        return _one_best(tokens, scores)

    return search


# The strategies, by DecodeConfig.strategy.
STRATEGIES = {
    "greedy": Strategy(settings=(), build=_greedy),
    "beam": Strategy(settings=("beam_size", "alpha", "nbest"), build=_beam),
    "sample": Strategy(
        settings=("temperature", "top_k"),
        build=_sample,
        inputs=lambda decode, streams: (np.uint32(decode.seed % 2**32), streams),
    ),
}


def _forced_attention(model, max_length: int) -> Callable:
    """The search's twin for attention: feed start then `target_ids`, as teacher forcing
    does, and keep the attention weights of each step."""

    def attend(source_ids, target_ids, length):  # (batch, steps), (batch, max_length), ()
        state = model.encode(source_ids, max_length)
        start = ops.full((ops.shape(target_ids)[0], 1), START_ID, dtype="int32")
        fed = ops.concatenate([start, target_ids[:, :-1]], axis=1)  # (batch, max_length)
        weights = ops.zeros((max_length, *ops.shape(source_ids)), dtype="float32")

        def body(index, carry):
            weights, state = carry
            _, state = model.step(ops.take(fed, index, axis=1), state)
            row = ops.cast(state["attention"], "float32")[None]  # (1, batch, steps)
            return ops.slice_update(weights, (index, 0, 0), row), state

        weights, _ = ops.fori_loop(0, length, body, (weights, state))
        return ops.transpose(weights, (1, 0, 2))  # (batch, max_length, steps)

    return attend


@dataclass(frozen=True)
class Attention:
    """Where the model looked while writing an output: one row per output token (its end
    included), one column per source token; each row sums to 1."""

    source_tokens: list[str]
    output_tokens: list[str]
    weights: list[list[float]]  # (output tokens, source tokens)


@dataclass(frozen=True)
class Hypothesis:
    """One candidate translation."""

    text: str
    # The model's log-probability of the text's tokens, its end included; beam search
    # divides it by the length penalty (see `tandem.decoding.beam.length_penalty`).
    score: float | None  # None for an empty source, which is not decoded


@dataclass(frozen=True)
class Translation:
    """All hypotheses for one source, best first: `nbest` of them, or fewer when the search
    finds fewer (an empty source gets `nbest` empty ones)."""

    source: str
    hypotheses: list[Hypothesis]

    @property
    def text(self) -> str:
        return self.hypotheses[0].text


class Translator:
    """Translate text with a trained tandem model.

    Args:
        loaded: a model directory read by `load_model_dir`.

    Example:
        >>> translator = Translator.from_dir("runs/demo/attention")  # doctest: +SKIP
        >>> translator.translate(["twenty-one"], strategy="beam", beam_size=5)  # doctest: +SKIP
        ['vingt et un']
    """

    def __init__(self, loaded: LoadedModel):
        self.model = loaded.model
        self.source_vocab = loaded.source_vocab
        self.target_vocab = loaded.target_vocab
        self.config = loaded.config
        self.manifest = loaded.manifest
        self.path = loaded.path
        self._compiled: OrderedDict[tuple, Callable] = OrderedDict()

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

    def is_within_training_range(self, text: str) -> bool:
        """True when every token of `text` is known and it is no longer than training sources."""
        return self.source_vocab.covers(text, self.max_source_length)

    def translate(
        self, texts: Sequence[str], decode: DecodeConfig | None = None, **options
    ) -> list[str]:
        """Translate texts; returns the best translation of each, in order.

        Args:
            texts: source sentences; an empty one gives an empty translation.
            decode: decoding settings (default `DecodeConfig()`: batched greedy).
            **options: `DecodeConfig` fields overriding `decode`, e.g. `strategy="beam"`.
        """
        return [result.text for result in self.translate_stream(texts, decode, **options)]

    def translate_stream(
        self,
        texts: Iterable[str],
        decode: DecodeConfig | None = None,
        *,
        more_ready: Callable[[], bool] | None = None,
        **options,
    ) -> Iterator[Translation]:
        """Translate lazily, in input order, holding a bounded window of sentences in memory.

        Reads `batch_size * WINDOW_BATCHES` texts at a time, decodes them in length-sorted
        batches and yields a `Translation` (all hypotheses) per text.

        Args:
            texts: the sources, read as they are needed.
            decode: decoding settings (default: batched greedy); `options` replace some.
            more_ready: for interactive input (a terminal, a pipe fed line by line): asked
                after each text whether the next one can be read without waiting; when it
                says no, the texts read so far are translated at once instead of waiting for
                a full window.
        """
        decode = dataclasses.replace(decode_config(decode), **options)
        if isinstance(texts, str | bytes):  # would otherwise translate each character alone
            kind = type(texts).__name__
            raise TypeError(f"texts must be an iterable of strings, not one {kind}: use [text]")
        window: list[str] = []
        first_text = 0  # texts before this window: warnings' numbers, sampling's streams
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"texts must be strings, got {type(text).__name__}: {text!r}")
            window.append(text)
            full = len(window) == decode.batch_size * WINDOW_BATCHES
            if full or (more_ready is not None and not more_ready()):
                yield from self._translate_window(window, decode, first_text)
                first_text += len(window)
                window = []
        if window:
            yield from self._translate_window(window, decode, first_text)

    def _translate_window(
        self, texts: list[str], decode: DecodeConfig, first_text: int
    ) -> list[Translation]:
        """Decode one window of texts, numbering them from `first_text` (in warnings, and as
        sampling's streams: a text's samples depend on its position, not on its batch)."""
        source_ids, lengths = encode_sources(texts, self.source_vocab, self.max_source_length)
        self._check_lengths(texts, lengths, decode.overlong, first_text)
        # A window smaller than one batch (the last, or an interactive one) is decoded in a
        # batch of the power of two that holds it, so that a huge batch size does not
        # allocate and compute rows that hold nothing; a few shapes are compiled at most.
        if len(texts) < decode.batch_size:
            rows = max(DecodeConfig().batch_size, 1 << (len(texts) - 1).bit_length())
            decode = dataclasses.replace(decode, batch_size=min(decode.batch_size, rows))
        order = np.argsort(-np.asarray(lengths), kind="stable")
        batches = []
        for start in range(0, len(texts), decode.batch_size):
            rows = order[start : start + decode.batch_size]
            # Fixed batch shapes keep one compiled program per decoding setting and source
            # bucket. Unmasked models (the seed) read padding, so they always see it all.
            steps = self.source_steps(max(lengths[row] for row in rows))
            batch = np.zeros((decode.batch_size, steps), dtype=np.int32)
            batch[: len(rows)] = source_ids[rows, :steps]
            streams = np.zeros(decode.batch_size, dtype=np.uint32)  # rows of padding: any
            streams[: len(rows)] = first_text + rows
            batches.append((rows, batch, streams))
        # Small batches leave cores idle; the backend releases the GIL, so two threads keep
        # two batches computing at once. The search is compiled before the threads start; a
        # single batch (a server's request) is decoded here, without starting threads.
        self._decoder(decode, decode.max_length or self.max_target_length)
        threads = min(DECODE_THREADS, len(batches))
        with ThreadPoolExecutor(max_workers=threads) if threads > 1 else nullcontext() as pool:
            decode_one = lambda job: self._decode_batch(job[1], decode, job[2])  # noqa: E731
            outputs = pool.map(decode_one, batches) if pool else map(decode_one, batches)
            results: list[Translation | None] = [None] * len(texts)
            for (rows, _, _), (tokens, scores) in zip(batches, outputs, strict=True):
                for position, row in enumerate(rows):
                    results[row] = self._translation(texts[row], tokens[position], scores, position)
        return results

    @functools.cached_property
    def has_attention(self) -> bool:
        """Whether the model attends to its source (attention RNNs, the Transformer): its
        decoder state then carries the attention weights of the last step."""
        source_ids = np.zeros((1, self.source_steps(1)), dtype=np.int32)
        return "attention" in self.model.encode(source_ids, 1)

    def attention(
        self, sources: Sequence[str], outputs: Sequence[str], max_length: int | None = None
    ) -> list[Attention]:
        """The attention weights of the model writing each output for its source (the
        output's tokens fed as teacher forcing feeds them), one `Attention` per pair.

        Args:
            sources: source texts.
            outputs: a translation of each source, e.g. a `Hypothesis.text`.
            max_length: the most output tokens, end included (default: the model's).
        Raises:
            ValueError: the model has no attention (`has_attention`).

        Example:
            >>> translator.attention(["Go."], ["Va !"])[0].output_tokens  # doctest: +SKIP
            ['Va', '!', '</s>']
        """
        if not self.has_attention:
            raise ValueError(f"{self.path}: the model has no attention")
        max_length = max_length or self.max_target_length
        source_ids, lengths = encode_sources(
            list(sources), self.source_vocab, self.max_source_length
        )
        targets = [self.target_vocab.encode(text)[: max_length - 1] + [END_ID] for text in outputs]
        attend = self._program(("attention", max_length), _forced_attention, max_length)
        results = []
        for start in range(0, len(targets), DecodeConfig().batch_size):
            rows = range(start, min(start + DecodeConfig().batch_size, len(targets)))
            batch = 1 << (len(rows) - 1).bit_length()  # a few compiled shapes at most
            steps = self.source_steps(max(lengths[row] for row in rows))
            source_batch = np.zeros((batch, steps), dtype=np.int32)
            source_batch[: len(rows)] = source_ids[list(rows), :steps]
            target_batch = np.zeros((batch, max_length), dtype=np.int32)
            for position, row in enumerate(rows):
                target_batch[position, : len(targets[row])] = targets[row]
            longest = np.int32(max(len(targets[row]) for row in rows))
            weights = ops.convert_to_numpy(attend(source_batch, target_batch, longest))
            for position, row in enumerate(rows):
                source = source_ids[row, : min(lengths[row], steps)]
                results.append(
                    Attention(
                        source_tokens=[self.source_vocab.itos[i] for i in source],
                        output_tokens=[self.target_vocab.itos[i] for i in targets[row]],
                        weights=weights[position, : len(targets[row]), : len(source)].tolist(),
                    )
                )
        return results

    def source_steps(self, longest: int) -> int:
        """Source steps of a batch whose longest source has `longest` tokens: masked models
        pad to a multiple of SOURCE_BUCKET, unmasked ones (the seed) to the longest training
        source, since they read the padding."""
        steps = self.max_source_length
        if self.config.model.mask_padding:
            longest = max(1, min(longest, steps))
            steps = min(steps, -(-longest // SOURCE_BUCKET) * SOURCE_BUCKET)
        return steps

    def warm_up(self, decode: DecodeConfig | None = None) -> int:
        """Compile `decode`'s search for every source shape it can meet, so that no later
        translation with the same settings and batch size compiles; returns the shapes.

        Example:
            >>> translator.warm_up(DecodeConfig(batch_size=1))  # doctest: +SKIP
            2
        """
        decode = decode_config(decode)
        shapes = sorted({self.source_steps(n) for n in range(1, self.max_source_length + 1)})
        streams = np.zeros(decode.batch_size, dtype=np.uint32)
        for steps in shapes:
            source_ids = np.zeros((decode.batch_size, steps), dtype=np.int32)  # all padding
            self._decode_batch(source_ids, decode, streams)
        return len(shapes)

    def _translation(self, source: str, tokens: np.ndarray, scores, position: int) -> Translation:
        if not source.strip():  # as many (empty) hypotheses as any other source gets
            return Translation(source, [Hypothesis("", None) for _ in tokens])
        # A beam keeps fewer than nbest hypotheses (scored -inf) when no more exist, as in a
        # tiny vocabulary at a short max_length; the best always has a finite score.
        hypotheses = [
            Hypothesis(self.target_vocab.decode(ids), float(scores[position, rank]))
            for rank, ids in enumerate(tokens)
            if rank == 0 or np.isfinite(scores[position, rank])
        ]
        return Translation(source, hypotheses)

    def _decode_batch(self, source_ids: np.ndarray, decode: DecodeConfig, streams: np.ndarray):
        """(batch, source steps) -> tokens (batch, nbest, steps), scores (batch, nbest);
        `streams` (batch,): each row's random stream when sampling."""
        search = self._decoder(decode, decode.max_length or self.max_target_length)
        tokens, scores = search(source_ids, *STRATEGIES[decode.strategy].inputs(decode, streams))
        return ops.convert_to_numpy(tokens), ops.convert_to_numpy(scores)

    def _check_lengths(
        self, texts: list[str], lengths: list[int], overlong: str, before: int
    ) -> None:
        """Warn about (truncate) or refuse overlong texts, numbered from `before + 1`."""
        for number, (text, length) in enumerate(zip(texts, lengths, strict=True), before + 1):
            if length > self.max_source_length:
                message = (
                    f"source of {length} tokens is longer than the model's maximum of "
                    f"{self.max_source_length}: {text[:40]!r}"
                )
                if overlong == "error":
                    raise OverlongSourceError(number, message)
                warnings.warn(OverlongSourceWarning(f"{message} (truncated)", number), stacklevel=5)

    def _decoder(self, decode: DecodeConfig, max_length: int):
        """The compiled search for one decoding setting and shape, built once and cached."""
        strategy = STRATEGIES[decode.strategy]
        settings = tuple(getattr(decode, name) for name in strategy.settings)
        key = (decode.strategy, decode.batch_size, max_length, *settings)
        return self._program(key, strategy.build, decode, max_length)

    def _program(self, key: tuple, build: Callable, *args) -> Callable:
        """The compiled `build(model, *args)`, built once per key and kept while it is among
        the COMPILED_PROGRAMS used last (so that settings varied without end, as a server's
        clients may vary them, do not hold memory without end)."""
        if key in self._compiled:
            self._compiled.move_to_end(key)
        else:
            function = build(self.model, *args)
            self._compiled[key] = compile_stateless(function, self.model.variables)
            if len(self._compiled) > COMPILED_PROGRAMS:
                self._compiled.popitem(last=False)
        return self._compiled[key]
