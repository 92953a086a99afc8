"""The model directory: its layout (checkpoints included), written atomically, loaded safely."""

from __future__ import annotations

import csv
import io
import json
import platform
import shlex
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras

from tandem.config import Config, ConfigError
from tandem.data.vocabulary import Vocabulary
from tandem.errors import CheckpointError, ModelDirError, TandemError
from tandem.files import (
    being_trained,
    make_directory,
    write_atomically,
    write_json_atomically,
    write_text_atomically,
)
from tandem.models import EncoderDecoder, ModelDims, build_model_from_training_model
from tandem.models.weights import weights_to_load
from tandem.version import __version__

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

# A run's checkpoints (written by tandem.training.checkpoints), under CHECKPOINTS_DIR:
#   last/    the most recent epoch that ended with a finite loss
#   best/    the epoch with the lowest monitored loss (val_loss, else loss)
#   epochs/  with train.average_last or train.keep_checkpoints: the trainable weights of recent
#            epochs, epoch-NNNN.npz (each written atomically; older ones deleted after)
# last/ and best/ each hold WEIGHTS_FILE (the compiled training model: weights and optimizer
# state), HISTORY_FILE (one row per epoch so far) and STATE_FILE (epochs done, best loss, RNG
# states, callback counters), written last. NAME.tmp/ is a checkpoint being written; NAME.old/
# the one it replaces, kept complete until the new one is in place.
CHECKPOINTS_DIR = "checkpoints"
LAST, BEST = "last", "best"
TEMPORARY, OLD = ".tmp", ".old"  # suffixes of NAME while it is swapped
EPOCHS_DIR = "epochs"
STATE_FILE = "state.json"
STATE_FORMAT = "tandem-checkpoint"
STATE_VERSION = 1

# What a run shows of itself, beside history.csv and the learning curve:
#   validations/  at each --score-every scoring, epoch-N.tsv (source, reference, hypothesis)
#                 and, for attention models, epoch-N-attention-K.png of a few fixed sentences
#   tensorboard/  with train.tensorboard: TensorBoard event files, one scalar per history column
VALIDATIONS_DIR = "validations"
TENSORBOARD_DIR = "tensorboard"


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
    if path.is_dir() and any(path.iterdir()) and not (path / MANIFEST_FILE).exists():
        raise TandemError(f"{path}: directory is not empty and holds no tandem model")
    return make_directory(path)


def checkpoint_root(model_dir: str | Path) -> Path:
    """The directory of a run's checkpoints."""
    return Path(model_dir) / CHECKPOINTS_DIR


def checkpoint_dir(model_dir: str | Path, name: str, suffix: str = "") -> Path:
    """Checkpoint `name` (LAST or BEST); with `suffix` (TEMPORARY, OLD), its swap partner."""
    return checkpoint_root(model_dir) / f"{name}{suffix}"


def read_checkpoint_state(model_dir: str | Path, name: str) -> tuple[Path, dict] | None:
    """The directory and state of checkpoint `name`, from `NAME.old` when a kill fell between
    the two renames of a swap (`NAME` is then missing); None when there is no such checkpoint.

    Raises:
        CheckpointError: the state cannot be read, or is missing (a checkpoint is put in
            place only whole, so that is damage).
    """
    final = checkpoint_dir(model_dir, name)
    for candidate in (final, checkpoint_dir(model_dir, name, OLD)):
        if (candidate / STATE_FILE).is_file():
            return candidate, read_versioned_json(
                candidate / STATE_FILE,
                "checkpoint state",
                STATE_FORMAT,
                "version",
                STATE_VERSION,
                CheckpointError,
            )
    if final.exists():
        raise CheckpointError(f"{final / STATE_FILE}: missing; the checkpoint is damaged")
    return None


def snapshot_path(model_dir: str | Path, epoch: int) -> Path:
    """Where the trainable weights of `epoch` (1-based) are kept for averaging."""
    return checkpoint_root(model_dir) / EPOCHS_DIR / f"epoch-{epoch:04d}.npz"


def snapshot_paths(model_dir: str | Path) -> dict[int, Path]:
    """The weight snapshots kept in a model directory, by epoch."""
    found = {}
    for path in (checkpoint_root(model_dir) / EPOCHS_DIR).glob("epoch-*.npz"):
        number = path.stem.removeprefix("epoch-")
        if number.isdigit():
            found[int(number)] = path
    return found


def validation_path(model_dir: str | Path, epoch: int) -> Path:
    """The decoded validation pairs of `epoch` (1-based), as TSV."""
    return Path(model_dir) / VALIDATIONS_DIR / f"epoch-{epoch}.tsv"


def attention_path(model_dir: str | Path, epoch: int, example: int) -> Path:
    """The attention heatmap of validation example `example` (1-based) at `epoch` (1-based)."""
    return Path(model_dir) / VALIDATIONS_DIR / f"epoch-{epoch}-attention-{example}.png"


def tensorboard_dir(model_dir: str | Path) -> Path:
    """Where TensorBoard event files go (`tensorboard --logdir` reads it)."""
    return Path(model_dir) / TENSORBOARD_DIR


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
    weights_epochs: Sequence[int] | None = None,
) -> None:
    """Write config, vocabularies, the training model (.keras) and a manifest into `path`.

    Each file is replaced atomically; the manifest, which marks the directory complete, last.
    `weights_epochs`: the epochs whose weights (or their mean) the model holds, recorded in
    the manifest.
    """
    write_atomically(path / CONFIG_FILE, config.save)
    write_atomically(path / SOURCE_VOCAB_FILE, source_vocab.save)
    write_atomically(path / TARGET_VOCAB_FILE, target_vocab.save)
    write_atomically(path / WEIGHTS_FILE, model.training_model.save)
    write_json_atomically(
        path / MANIFEST_FILE,
        _manifest(model.dims, complete=True, train_data=train_data, weights_epochs=weights_epochs),
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


def _manifest(
    dims: ModelDims,
    complete: bool,
    train_data: dict | None,
    weights_epochs: Sequence[int] | None = None,
) -> dict:
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "complete": complete,  # false while training runs: resume it, or start over
        "tandem_version": __version__,
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "backend_version": _backend_version(),
        "python_version": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "dims": dims.to_dict(),
    }
    if train_data is not None:
        manifest["train_data"] = train_data  # pair count and fingerprint of the training data
    if weights_epochs:
        manifest["weights_epochs"] = [int(e) for e in weights_epochs]
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
        where = shlex.quote(str(path))
        if read_checkpoint_state(path, LAST) is None:
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
        with weights_to_load():  # every weight is read from the archive
            training_model = keras.saving.load_model(
                path / WEIGHTS_FILE, compile=False, safe_mode=True
            )
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
