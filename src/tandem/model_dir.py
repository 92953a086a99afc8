"""The model directory: everything needed to rebuild the three graphs, and nothing executable."""

from __future__ import annotations

import csv
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import keras

import tandem
from tandem.config import Config, ConfigError
from tandem.data.vocabulary import Vocabulary
from tandem.errors import ModelDirError, TandemError
from tandem.models import ModelDims, Seq2Seq

FORMAT = "tandem-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"
SOURCE_VOCAB_FILE = "source_vocab.json"
TARGET_VOCAB_FILE = "target_vocab.json"
WEIGHTS_FILE = "model.keras"
HISTORY_FILE = "history.csv"
REQUIRED_FILES = (MANIFEST_FILE, CONFIG_FILE, SOURCE_VOCAB_FILE, TARGET_VOCAB_FILE, WEIGHTS_FILE)


@dataclass
class LoadedModel:
    """A model directory read back: the layer owner, its vocabularies and config."""

    model: Seq2Seq
    source_vocab: Vocabulary
    target_vocab: Vocabulary
    config: Config
    manifest: dict
    path: Path


def prepare_output_dir(path: str | Path) -> Path:
    """Create `path`; refuse a non-empty directory that is not a tandem model directory."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise TandemError(f"{path}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not (path / MANIFEST_FILE).exists():
        raise TandemError(f"{path}: directory is not empty and holds no tandem model")
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_model_dir(
    path: Path, model: Seq2Seq, source_vocab: Vocabulary, target_vocab: Vocabulary, config: Config
) -> None:
    """Write config, vocabularies, the training model (.keras) and a manifest into `path`."""
    config.save(path / CONFIG_FILE)
    source_vocab.save(path / SOURCE_VOCAB_FILE)
    target_vocab.save(path / TARGET_VOCAB_FILE)
    model.training_model.save(path / WEIGHTS_FILE)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tandem_version": tandem.__version__,
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "backend_version": _backend_version(),
        "python_version": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "dims": model.dims.to_dict(),
    }
    (path / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def load_model_dir(path: str | Path) -> LoadedModel:
    """Rebuild the three graphs from a model directory alone, with Keras safe loading.

    Raises:
        ModelDirError: a missing file or a malformed one, named.
    """
    path = Path(path)
    if not path.is_dir():
        raise ModelDirError(f"{path}: no such model directory")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise ModelDirError(
            f"{path}: not a complete tandem model directory, missing {', '.join(missing)}"
        )
    manifest = _read_manifest(path / MANIFEST_FILE)
    try:
        config = Config.load(path / CONFIG_FILE)
        dims = ModelDims(**manifest["dims"])
    except (ConfigError, TypeError) as exc:
        raise ModelDirError(f"{path}: malformed model directory: {exc}") from None
    source_vocab = Vocabulary.load(path / SOURCE_VOCAB_FILE)
    target_vocab = Vocabulary.load(path / TARGET_VOCAB_FILE)
    if (len(source_vocab), len(target_vocab)) != (dims.num_encoder_tokens, dims.num_decoder_tokens):
        raise ModelDirError(f"{path}: vocabulary sizes do not match the manifest's dims")
    try:
        training_model = keras.saving.load_model(path / WEIGHTS_FILE, compile=False, safe_mode=True)
        model = Seq2Seq.from_training_model(config.model, dims, training_model)
    except Exception as exc:  # Keras raises many kinds for a damaged archive
        raise ModelDirError(f"{path / WEIGHTS_FILE}: cannot load model: {exc}") from None
    return LoadedModel(model, source_vocab, target_vocab, config, manifest, path)


def read_history(path: str | Path) -> list[dict]:
    """history.csv -> one dict of floats per epoch (epoch as int)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        {key: (int(value) if key == "epoch" else float(value)) for key, value in row.items()}
        for row in rows
    ]


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelDirError(f"{path}: malformed manifest: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelDirError(f"{path}: not a tandem model manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelDirError(
            f"{path}: model format version {manifest.get('format_version')!r}, "
            f"this tandem reads version {FORMAT_VERSION}"
        )
    if not isinstance(manifest.get("dims"), dict):
        raise ModelDirError(f"{path}: manifest has no dims")
    return manifest


def _backend_version() -> str:
    backend = keras.backend.backend()
    try:
        module = __import__(backend if backend != "tensorflow" else "tensorflow")
        return getattr(module, "__version__", "unknown")
    except ImportError:
        return "unknown"
