"""`OnnxTranslator`: translate with an exported model, with numpy and onnxruntime only."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tandem.data.batching import encode_sources
from tandem.data.vocabulary import Vocabulary
from tandem.errors import ModelDirError, OverlongSourceWarning
from tandem.runtime.search import beam_search, greedy_search

FORMAT = "tandem-onnx"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
# As `tandem.translator`: texts read ahead and sorted by length, so the batches, and the
# padding each source gets, are the same as `Translator`'s.
WINDOW_BATCHES = 16


class OnnxTranslator:
    """Translate text with a directory written by `tandem export` (no Keras, no JAX).

    The same batching, padding and searches as `tandem.Translator`, run on the exported
    encoder and decoder-step graphs with ONNX Runtime, so the outputs are the same.

    Args:
        path: the export directory (manifest.json, encoder.onnx, decoder_step.onnx, the
            vocabularies).
        threads: ONNX Runtime's intra-op threads; None lets it choose.

    Example:
        >>> translator = OnnxTranslator("exports/attention")  # doctest: +SKIP
        >>> translator.translate(["twenty-one"], strategy="beam", beam_size=5)  # doctest: +SKIP
        ['vingt et un']
    """

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime

        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        vocabularies = self.manifest["vocabularies"]
        self.source_vocab = Vocabulary.load(self.path / vocabularies["source"]["file"])
        self.target_vocab = Vocabulary.load(self.path / vocabularies["target"]["file"])
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # ONNX Runtime's notes on unused initializers
        # Threads that spin between the many small calls of a decoding loop cost 4x when the
        # cores are shared (measured: 29 ms a step, 7 ms without spinning).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads is not None:
            options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        self.encoder = onnxruntime.InferenceSession(
            str(self.path / self.manifest["encoder"]["file"]), options, providers=providers
        )
        self.decoder = onnxruntime.InferenceSession(
            str(self.path / self.manifest["decoder_step"]["file"]), options, providers=providers
        )
        self.state = self.manifest["state"]  # which encoder output feeds which decoder input
        self.carried = [s for s in self.state if s["decoder_output"] is not None]
        self.constant = [s for s in self.state if s["decoder_output"] is None]
        self._step_outputs = [self.manifest["decoder_probabilities"]] + [
            s["decoder_output"] for s in self.carried
        ]

    @property
    def max_source_length(self) -> int:
        return self.manifest["max_source_length"]

    @property
    def max_target_length(self) -> int:
        return self.manifest["max_target_length"]

    def translate(self, texts: Sequence[str], strategy: str = "greedy", **options) -> list[str]:
        """The best translation of each text, in order; see `hypotheses` for the options."""
        return [found[0][0] for found in self.hypotheses(texts, strategy, **options)]

    def hypotheses(
        self,
        texts: Sequence[str],
        strategy: str = "greedy",
        *,
        beam_size: int = 5,
        alpha: float = 0.0,
        nbest: int = 1,
        batch_size: int = 64,
        max_length: int | None = None,
    ) -> list[list[tuple[str, float | None]]]:
        """All hypotheses of each text, best first, as (text, score) pairs.

        Args:
            texts: source sentences; an empty one gets `nbest` empty hypotheses, score None.
            strategy: "greedy" or "beam".
            beam_size, alpha, nbest: beam search's settings (as `tandem translate`'s).
            batch_size: sentences decoded together.
            max_length: most tokens per output (default: the model's longest target).
        """
        if strategy not in ("greedy", "beam"):
            raise ValueError(f"strategy must be 'greedy' or 'beam', got {strategy!r}")
        if isinstance(texts, str | bytes):
            raise TypeError("texts must be an iterable of strings, not one string: use [text]")
        max_length = max_length or self.max_target_length
        cache = self.manifest["decoder_cache_length"]
        if cache is not None and max_length > cache:
            raise ValueError(f"max_length {max_length} is beyond the exported cache of {cache}")
        settings = dict(beam_size=beam_size, alpha=alpha, nbest=nbest if strategy == "beam" else 1)
        texts = list(texts)
        results: list = []
        window = batch_size * WINDOW_BATCHES
        for start in range(0, len(texts), window):
            chunk = texts[start : start + window]
            results += self._window(chunk, strategy, batch_size, max_length, settings, start)
        return results

    def _window(self, texts, strategy, batch_size, max_length, settings, before):
        source_ids, lengths = encode_sources(texts, self.source_vocab, self.max_source_length)
        for number, (text, length) in enumerate(zip(texts, lengths, strict=True), before + 1):
            if length > self.max_source_length:
                message = (
                    f"source of {length} tokens is longer than the model's maximum of "
                    f"{self.max_source_length}: {text[:40]!r} (truncated)"
                )
                warnings.warn(OverlongSourceWarning(message, number), stacklevel=4)
        order = np.argsort(-np.asarray(lengths), kind="stable")
        results: list = [None] * len(texts)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            steps = self.max_source_length
            if self.manifest["source_padding"] == "bucket":
                bucket = self.manifest["source_bucket"]
                longest = max(1, max(min(lengths[row], steps) for row in rows))
                steps = min(steps, -(-longest // bucket) * bucket)
            tokens, scores = self._decode(source_ids[rows, :steps], strategy, max_length, settings)
            for position, row in enumerate(rows):
                if not texts[row].strip():
                    results[row] = [("", None)] * len(tokens[position])
                    continue
                results[row] = [
                    (self.target_vocab.decode(ids), float(scores[position, rank]))
                    for rank, ids in enumerate(tokens[position])
                    if rank == 0 or np.isfinite(scores[position, rank])
                ]
        return results

    def _decode(self, source_ids: np.ndarray, strategy: str, max_length: int, settings: dict):
        """(batch, steps) ids -> tokens (batch, nbest, max_length), scores (batch, nbest)."""
        batch = len(source_ids)
        names = [output.name for output in self.encoder.get_outputs()]
        encoded = dict(
            zip(names, self.encoder.run(None, {"encoder_inputs": source_ids}), strict=True)
        )
        carried = {s["decoder_input"]: encoded[s["encoder_output"]] for s in self.carried}
        copies = settings["beam_size"] if strategy == "beam" else 1
        constant = {
            s["decoder_input"]: np.repeat(encoded[s["encoder_output"]], copies, axis=0)
            for s in self.constant
        }

        def step(tokens, state):  # tokens (rows,) -> log-probs (rows, vocab), state
            feeds = {"decoder_inputs": tokens[:, None].astype(np.int32), **state, **constant}
            probs, *new = self.decoder.run(self._step_outputs, feeds)
            log_probs = np.log(np.maximum(probs[:, 0], np.float32(1e-30)))
            return log_probs, {
                s["decoder_input"]: v for s, v in zip(self.carried, new, strict=True)
            }

        if strategy == "greedy":
            tokens, scores = greedy_search(step, carried, batch, max_length)
            return tokens[:, None], scores[:, None]
        return beam_search(step, carried, batch, max_length, **settings)


def read_manifest(path: Path) -> dict:
    """The manifest of export directory `path`.

    Raises:
        ModelDirError: no manifest, or not one of `tandem export`'s of this version.
    """
    manifest_path = path / MANIFEST_FILE
    if not path.is_dir():
        raise ModelDirError(f"{path}: no such export directory")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelDirError(f"{path}: not an export directory (no {MANIFEST_FILE})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelDirError(f"{manifest_path}: malformed manifest: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelDirError(f"{manifest_path}: not a tandem export manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelDirError(
            f"{manifest_path}: export format version {manifest.get('format_version')!r}, this "
            f"tandem reads version {FORMAT_VERSION}"
        )
    return manifest
