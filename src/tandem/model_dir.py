"""The model directory: everything needed to rebuild the three graphs, and nothing executable."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
import shlex
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import keras

try:
    import fcntl
except ImportError:  # Windows: no training lock
    fcntl = None

import tandem
from tandem.config import Config, ConfigError
from tandem.data.vocabulary import Vocabulary
from tandem.errors import ModelDirError, TandemError
from tandem.models import EncoderDecoder, ModelDims, build_model_from_training_model

FORMAT = "tandem-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"
SOURCE_VOCAB_FILE = "source_vocab.json"
TARGET_VOCAB_FILE = "target_vocab.json"
WEIGHTS_FILE = "model.keras"
HISTORY_FILE = "history.csv"
CURVE_FILE = "learning_curve.png"
REQUIRED_FILES = (MANIFEST_FILE, CONFIG_FILE, SOURCE_VOCAB_FILE, TARGET_VOCAB_FILE, WEIGHTS_FILE)
LOCK_TRIES = 20  # 50 ms apart: outlasts another process's look at the lock (being_trained)
_HELD: set[Path] = set()  # directories whose training_lock this process holds


@dataclass
class LoadedModel:
    """A model directory read back: the layer owner, its vocabularies and config."""

    model: EncoderDecoder
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
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a parent that is a file, no permission, a read-only disk
        raise TandemError(f"{path}: cannot create the directory: {exc.strerror}") from None
    return path


@contextlib.contextmanager
def training_lock(path: Path, create: bool) -> Iterator[None]:
    """Keep `path` to this process while it trains: another trainer, or `average`, is refused.

    The lock is the kernel's (`flock` on the directory itself), so it ends with the process
    however that ends, kill -9 included, and nothing is written for it. With `create`, the
    directory is made first (`prepare_output_dir`); a missing directory is left to the caller
    to report. Where `fcntl` is missing (Windows), there is no lock.
    """
    if create:
        prepare_output_dir(path)
    if fcntl is None or not path.is_dir():
        yield
        return
    descriptor = os.open(path, os.O_RDONLY)
    # A few tries: `being_trained` takes the lock shared for a moment.
    for attempt in range(LOCK_TRIES):
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt == LOCK_TRIES - 1:
                os.close(descriptor)
                raise TandemError(
                    f"{path}: another tandem process is training in this directory (or "
                    "averaging its model); wait for it to end, or use another directory"
                ) from None
            time.sleep(0.05)
    held = path.resolve()
    _HELD.add(held)
    try:
        yield
    finally:
        _HELD.discard(held)
        os.close(descriptor)  # releases the lock


def being_trained(path: Path) -> bool:
    """Whether another process holds `path`'s `training_lock` now."""
    if fcntl is None or Path(path).resolve() in _HELD:
        return False
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)


def start_model_dir(
    path: Path,
    dims: ModelDims,
    source_vocab: Vocabulary,
    target_vocab: Vocabulary,
    config: Config,
    train_data: dict,
) -> None:
    """Write what a resumed run needs before the first epoch, under a manifest marked incomplete.

    The manifest goes first, so a directory killed at any later point is still recognised as
    tandem's (an unfinished run), never as a foreign non-empty directory.
    """
    write_json_atomically(
        path / MANIFEST_FILE, _manifest(dims, complete=False, train_data=train_data)
    )
    write_atomically(path / CONFIG_FILE, config.save)
    write_atomically(path / SOURCE_VOCAB_FILE, source_vocab.save)
    write_atomically(path / TARGET_VOCAB_FILE, target_vocab.save)


def save_model_dir(
    path: Path,
    model: EncoderDecoder,
    source_vocab: Vocabulary,
    target_vocab: Vocabulary,
    config: Config,
    train_data: dict | None = None,
) -> None:
    """Write config, vocabularies, the training model (.keras) and a manifest into `path`.

    Each file is replaced atomically; the manifest, which marks the directory complete, last.
    """
    write_atomically(path / CONFIG_FILE, config.save)
    write_atomically(path / SOURCE_VOCAB_FILE, source_vocab.save)
    write_atomically(path / TARGET_VOCAB_FILE, target_vocab.save)
    write_atomically(path / WEIGHTS_FILE, model.training_model.save)
    write_json_atomically(
        path / MANIFEST_FILE, _manifest(model.dims, complete=True, train_data=train_data)
    )


def read_manifest(path: str | Path) -> dict | None:
    """The manifest of model directory `path`, or None when it has none.

    Raises:
        ModelDirError: a manifest that is malformed or not tandem's.
    """
    manifest_path = Path(path) / MANIFEST_FILE
    return _read_manifest(manifest_path) if manifest_path.is_file() else None


def is_complete(manifest: dict) -> bool:
    """Whether training finished (manifests written before checkpoints existed count as done)."""
    return manifest.get("complete", True) is True


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(temporary_path)`, flush it to disk, then rename it over `path`.

    A reader sees the old file or the new one, never half of one. The temporary file keeps
    `path`'s suffix, because some writers (Keras's `.keras` archives) check it.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        write(temporary)
        fsync_file(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_dir(path.parent)


def write_text_atomically(path: Path, text: str) -> None:
    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_json_atomically(path: Path, data: dict) -> None:
    write_text_atomically(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Make renames inside directory `path` durable (a no-op where directories can't be opened)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _manifest(dims: ModelDims, complete: bool, train_data: dict | None) -> dict:
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "complete": complete,  # false while training runs: resume it, or start over
        "tandem_version": tandem.__version__,
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "backend_version": _backend_version(),
        "python_version": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "dims": dims.to_dict(),
    }
    if train_data is not None:
        manifest["train_data"] = train_data  # pair count and fingerprint of the training data
    return manifest


def load_model_dir(path: str | Path) -> LoadedModel:
    """Rebuild the three graphs from a model directory alone, with Keras safe loading.

    Raises:
        ModelDirError: a missing file or a malformed one, named.
    """
    path = Path(path)
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "no such model directory"
        raise ModelDirError(f"{path}: {what}")
    manifest = read_manifest(path)
    if manifest is not None and not is_complete(manifest):
        if being_trained(path):
            raise ModelDirError(
                f"{path}: a tandem process is training in this directory; its model can be "
                "used once the training ends"
            )
        from tandem.training.checkpoints import LAST, find_checkpoint  # it imports this module

        where = shlex.quote(str(path))
        if find_checkpoint(path, LAST) is None:
            raise ModelDirError(
                f"{path}: training stopped before its first epoch ended; start it again with "
                f"its options: `tandem train DATA -o {where} --config "
                f"{shlex.quote(str(path / CONFIG_FILE))} --overwrite`"
            )
        raise ModelDirError(
            f"{path}: training has not finished; continue it with "
            f"`tandem train DATA -o {where} --resume`"
        )
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise ModelDirError(
            f"{path}: not a complete tandem model directory, missing {', '.join(missing)}"
        )
    try:
        config = Config.load(path / CONFIG_FILE)
        dims = ModelDims(**manifest["dims"])
    except (ConfigError, TypeError) as exc:
        raise ModelDirError(f"{path}: malformed model directory: {exc}") from None
    source_vocab = Vocabulary.load(path / SOURCE_VOCAB_FILE)
    target_vocab = Vocabulary.load(path / TARGET_VOCAB_FILE)
    if (len(source_vocab), len(target_vocab)) != (dims.num_encoder_tokens, dims.num_decoder_tokens):
        raise ModelDirError(f"{path}: vocabulary sizes do not match the manifest's dims")
    for name, vocab, kind in (
        (SOURCE_VOCAB_FILE, source_vocab, config.data.source_tokens),
        (TARGET_VOCAB_FILE, target_vocab, config.data.target_tokens),
    ):
        if vocab.kind != kind:
            raise ModelDirError(
                f"{path / name}: tokens of kind {vocab.kind!r}, but {CONFIG_FILE} says {kind!r}"
            )
    if not zipfile.is_zipfile(path / WEIGHTS_FILE):  # Keras would say "File not found"
        raise ModelDirError(f"{path / WEIGHTS_FILE}: not a .keras archive (truncated or damaged)")
    try:
        training_model = keras.saving.load_model(path / WEIGHTS_FILE, compile=False, safe_mode=True)
        model = build_model_from_training_model(config.model, dims, training_model)
        # Layers rebuilt from the archive keep its settings (a transformer's depth): they must
        # be those of the layers config.json calls for, made here unbuilt (no weights).
        wanted = type(model).make_layers(config.model, dims)
        differ = [
            n for n, layer in wanted.items() if _settings(layer) != _settings(model.layers[n])
        ]
    except Exception as exc:  # Keras raises many kinds for a damaged archive
        raise ModelDirError(f"{path / WEIGHTS_FILE}: cannot load model: {exc}") from None
    if differ:
        raise ModelDirError(
            f"{path}: {CONFIG_FILE} does not match {WEIGHTS_FILE}: its layers "
            f"{', '.join(differ)} have other settings than the config describes"
        )
    return LoadedModel(model, source_vocab, target_vocab, config, manifest, path)


def _settings(layer: keras.layers.Layer) -> dict:
    """A layer's own settings: its config without the nested ones (initializers, a wrapped
    layer), which Keras writes differently once a layer is built."""
    return {key: value for key, value in layer.get_config().items() if not isinstance(value, dict)}


def read_history(path: str | Path) -> list[dict]:
    """history.csv -> one dict of floats per epoch (epoch as int); "NA" cells are left out."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        {
            key: (int(value) if key == "epoch" else float(value))
            for key, value in row.items()
            if value != "NA"  # Keras's CSVLogger writes NA for val_* columns without validation
        }
        for row in rows
    ]


def write_history(path: str | Path, rows: list[dict]) -> None:
    """One row per epoch, as Keras's CSVLogger writes them: epoch first, then sorted keys."""
    keys = sorted({key for row in rows for key in row} - {"epoch"})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["epoch", *keys], restval="NA", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomically(Path(path), buffer.getvalue())


def read_versioned_json(
    path: Path, kind: str, fmt: str, version_key: str, version: int, error: type[TandemError]
) -> dict:
    """Read a JSON object whose `format` must be `fmt` and whose `version_key` is `version`.

    Args:
        path: the file.
        kind: what the file is, for messages ("manifest", "checkpoint state").
        fmt: the expected value of its `format` key.
        version_key: the key that holds its version.
        version: the version this tandem reads.
        error: the exception raised for a damaged or foreign file.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: malformed {kind}: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != fmt:
        raise error(f"{path}: not a tandem {kind}")
    if document.get(version_key) != version:
        raise error(
            f"{path}: {kind} version {document.get(version_key)!r}, this tandem reads version "
            f"{version}"
        )
    return document


def _read_manifest(path: Path) -> dict:
    manifest = read_versioned_json(
        path, "model manifest", FORMAT, "format_version", FORMAT_VERSION, ModelDirError
    )
    dims = manifest.get("dims")
    if not isinstance(dims, dict):
        raise ModelDirError(f"{path}: manifest has no dims")
    for key, value in dims.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelDirError(f"{path}: dims.{key} must be a positive integer, got {value!r}")
    return manifest


def _backend_version() -> str:
    backend = keras.backend.backend()
    try:
        module = __import__(backend if backend != "tensorflow" else "tensorflow")
        return getattr(module, "__version__", "unknown")
    except ImportError:
        return "unknown"
