"""`export_model`: a model directory -> an export directory, written whole or not at all."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import json
import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from tandem.data.vocabulary import END_ID, PAD_ID, START_ID, UNK_ID, Vocabulary
from tandem.errors import TandemError
from tandem.export.graphs import export_graphs
from tandem.files import fsync_dir
from tandem.runtime import OnnxTranslator
from tandem.runtime.translator import FORMAT, FORMAT_VERSION, MANIFEST_FILE
from tandem.translator import SOURCE_BUCKET, Translator

INSTALL = "pip install 'tandem[export]'"
# Sentences decoded both ways before an export is kept, and the beam they are searched with.
CHECK_SENTENCES = 8
CHECK_BEAM = 3
PACKAGES = ("keras", "jax", "jax2onnx", "onnx", "onnxruntime")


class ExportError(TandemError):
    """A model that cannot be exported, or an export that does not decode as the model does."""


def export_model(model_dir: str | Path, output: str | Path, check_texts: list[str] | None = None):
    """Export a model directory's encoder and decoder-step graphs to ONNX, with its
    vocabularies and a manifest, into the new directory `output`.

    Everything is written into a temporary directory beside `output`, some sentences are
    decoded with the model and with the exported graphs (greedy and beam), and only if they
    agree is the directory renamed into place. See docs/export.md.

    Args:
        model_dir: a directory written by `tandem train`.
        output: the export directory to create; it must not exist.
        check_texts: the sentences to decode both ways (default: CHECK_SENTENCES made of the
            source vocabulary's tokens).

    Returns:
        dict: the manifest written.

    Raises:
        ExportError: the output exists, the export extra is missing, the model cannot be
            converted, or the graphs decode differently from the model.
    """
    output = Path(output)
    if output.exists():
        raise ExportError(f"{output}: exists; export writes a new directory")
    _check_installed()
    if keras.backend.backend() != "jax":
        raise ExportError(
            f"export converts JAX programs; KERAS_BACKEND is {keras.backend.backend()}: unset it"
        )
    translator = Translator.from_dir(model_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        manifest = _write(translator, temporary)
        _write_json(temporary / MANIFEST_FILE, manifest)  # what the runtime reads
        texts = check_texts
        if texts is None:
            texts = _check_texts(translator.source_vocab, translator.max_source_length)
        manifest["agreement"] = _agreement(translator, OnnxTranslator(temporary), texts)
        _write_json(temporary / MANIFEST_FILE, manifest)
        temporary.chmod(0o755)  # mkdtemp's is 0o700
        temporary.rename(output)
        fsync_dir(output.parent)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return manifest


def _check_installed() -> None:
    for package in ("jax2onnx", "onnx", "onnxruntime"):
        try:
            importlib.import_module(package)
        except ImportError:
            raise ExportError(f"export needs {package}: {INSTALL}") from None


def _write(translator: Translator, directory: Path) -> dict:
    """The graphs and vocabularies into `directory`; -> the manifest, without its check."""
    model, config = translator.model, translator.config
    try:
        graphs = export_graphs(model, directory)
    except Exception as exc:  # jax2onnx raises many kinds for what it cannot convert
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"{translator.path}: this {config.model.family} model cannot be exported: {reason}"
        ) from None
    vocabularies = {}
    for side, vocab in (("source", translator.source_vocab), ("target", translator.target_vocab)):
        vocab.save(directory / f"{side}_vocab.json")
        entry = {"file": f"{side}_vocab.json", "kind": vocab.kind, "spm_model": None}
        if vocab.spm_model is not None:
            (directory / f"{side}.spm.model").write_bytes(vocab.spm_model)
            entry["spm_model"] = f"{side}.spm.model"
        vocabularies[side] = entry
    transformer = config.model.family == "transformer"
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model_dir": str(translator.path),
        "family": config.model.family,
        "model": dataclasses.asdict(config.model),
        **graphs,
        "vocabularies": vocabularies,
        "reserved_ids": {"pad": PAD_ID, "start": START_ID, "end": END_ID, "unk": UNK_ID},
        "max_source_length": translator.max_source_length,
        "max_target_length": translator.max_target_length,
        # Models that read padding (the seed) see every source padded to the longest; masked
        # ones, to the next multiple of the bucket (`tandem.translator`), as the runtime does.
        "source_padding": "bucket" if config.model.mask_padding else "full",
        "source_bucket": SOURCE_BUCKET,
        "static_source_length": None,
        # The Transformer's key/value caches hold this many steps: max_length's limit.
        "decoder_cache_length": translator.max_target_length if transformer else None,
        "versions": _versions(),
    }


def _versions() -> dict:
    from tandem.version import __version__

    versions = {"tandem": __version__}
    for package in PACKAGES:
        versions[package] = importlib.metadata.version(package)
    return versions


def _check_texts(vocab: Vocabulary, most_tokens: int) -> list[str]:
    """CHECK_SENTENCES sources of random known tokens, 1 to `most_tokens` (at most 12) long."""
    rng = np.random.default_rng(0)
    lengths = np.linspace(1, min(most_tokens, 12), CHECK_SENTENCES).round().astype(int)
    tokens = vocab.tokens or [""]
    return [
        vocab.tokenizer.detokenize([str(t) for t in rng.choice(tokens, size=length)])
        for length in lengths
    ]


def _agreement(translator: Translator, runtime: OnnxTranslator, texts: list[str]) -> dict:
    """Decode `texts` with the model and with the exported graphs; refuse if they differ."""
    for strategy, options in (("greedy", {}), ("beam", {"beam_size": CHECK_BEAM})):
        expected = translator.translate(texts, strategy=strategy, **options)
        got = runtime.translate(texts, strategy=strategy, **options)
        differ = [i for i, (a, b) in enumerate(zip(expected, got, strict=True)) if a != b]
        if differ:
            first = differ[0]
            raise ExportError(
                f"{translator.path}: the exported graphs translate {len(differ)} of {len(texts)} "
                f"check sentences differently from the model ({strategy}), e.g. "
                f"{texts[first]!r}: {got[first]!r}, not {expected[first]!r}; nothing written"
            )
    return {"sentences": len(texts), "strategies": ["greedy", f"beam {CHECK_BEAM}"]}


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
