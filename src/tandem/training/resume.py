"""Starting a run in a model directory, or continuing the one it holds."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tandem.config import Config
from tandem.data.vocabulary import Vocabulary
from tandem.errors import CheckpointError, TandemError
from tandem.files import write_atomically, write_json_atomically
from tandem.model_dir import (
    BEST,
    CONFIG_FILE,
    CURVE_FILE,
    HISTORY_FILE,
    LAST,
    MANIFEST_FILE,
    SOURCE_VOCAB_FILE,
    TARGET_VOCAB_FILE,
    VALIDATIONS_DIR,
    WEIGHTS_FILE,
    checkpoint_root,
    is_complete,
    prepare_output_dir,
    read_manifest,
    tensorboard_dir,
)
from tandem.training.checkpoints import (
    Checkpoint,
    copy_checkpoint_files,
    find_checkpoint,
    restore_checkpoints,
    write_checkpoint,
)

# What --resume may change: how long the run goes on, what its end saves, and what it keeps
# and logs on the side.
RESUMABLE_KEYS = (
    "train.epochs",
    "train.average_last",
    "train.keep_checkpoints",
    "train.tensorboard",
)


def data_fingerprint(pairs: Sequence[tuple[str, str]]) -> dict:
    """How many pairs, and a hash of them: a resumed run must train on the same data."""
    digest = hashlib.sha256()
    for source, target in pairs:
        digest.update(f"{source}\t{target}\n".encode())
    return {"pairs": len(pairs), "sha256": digest.hexdigest()}


def saved_config(model_dir: str | Path) -> Config:
    """The config of the run in `model_dir` (`--resume` starts from it; flags other than
    `--epochs`, `--average-last`, `--keep-checkpoints` and `--tensorboard` may not change it).

    Raises:
        TandemError: there is no run to resume there.
    """
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise TandemError(f"{model_dir}: no training run to resume (no {CONFIG_FILE})")
    return Config.load(path)


def config_differences(saved: Config, wanted: Config) -> list[str]:
    """`section.key: saved value -> wanted value` for every setting that differs."""
    old, new = _flatten(saved.to_dict()), _flatten(wanted.to_dict())
    return [
        f"{key} is {json.dumps(old.get(key))} in {CONFIG_FILE}, {json.dumps(new.get(key))} asked"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]


def check_fresh_run(model_dir: str | Path, overwrite: bool = False) -> Path:
    """Check that a new run may start in `model_dir`: refuse to throw away a trained model or
    an unfinished run unless `overwrite`. Nothing is deleted (see `clear_run`).

    An unfinished run with no checkpoint yet (killed in its first epoch) has nothing to lose
    and may be started over. A directory that is not tandem's is refused even with
    `overwrite`.
    """
    model_dir = prepare_output_dir(model_dir)
    manifest = read_manifest(model_dir)
    if manifest is not None and not overwrite:
        if is_complete(manifest):
            raise TandemError(
                f"{model_dir}: holds a trained model; train into a new directory, or pass "
                "--overwrite to replace it"
            )
        try:
            last = find_checkpoint(model_dir, LAST)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}; pass --overwrite to start over") from None
        if last is not None:
            raise TandemError(
                f"{model_dir}: holds an unfinished training run (checkpoint after epoch "
                f"{last.epoch}); continue it with --resume, train into a new directory, or "
                "pass --overwrite to start over"
            )
    return model_dir


def clear_run(model_dir: Path) -> None:
    """Delete what an earlier run left in `model_dir` (checkpoints, history, validations,
    TensorBoard events, model), once `check_fresh_run` allowed it and the new run's data have
    passed their checks."""
    for folder in (checkpoint_root(model_dir), model_dir / VALIDATIONS_DIR):
        shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(tensorboard_dir(model_dir), ignore_errors=True)
    for name in (HISTORY_FILE, CURVE_FILE, WEIGHTS_FILE):
        (model_dir / name).unlink(missing_ok=True)


def open_resumed_run(
    model_dir: str | Path, config: Config, train_data: dict
) -> tuple[Checkpoint, Vocabulary, Vocabulary, dict]:
    """Check that the run in `model_dir` can continue with `config` and these data.

    A run continues until it has done `config.train.epochs` epochs: an interrupted run from
    its last checkpoint, and a finished one (stopped by its epochs or by a callback, not by
    early stopping) too when `config` asks for more epochs than it has done. Only the number
    of epochs and the `RESUMABLE_KEYS` may differ from the run's own (averaging covers the
    epochs that kept snapshots); the new values are written into the directory's config so
    that a later `--resume` keeps them.

    Returns:
        The last checkpoint, the run's source and target vocabularies, and its manifest.

    Raises:
        TandemError: nothing to resume, or a config or data that differ from the run's.
    """
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir) if model_dir.is_dir() else None
    if manifest is None:
        raise TandemError(f"{model_dir}: no training run to resume")
    saved = saved_config(model_dir)
    differences = [
        line
        for line in config_differences(saved, config)
        if not line.startswith(tuple(f"{key} " for key in RESUMABLE_KEYS))
    ]
    if differences:
        raise TandemError(
            f"{model_dir}: --resume continues the run with its own config, but "
            f"{'; '.join(differences)}; drop the changed options, or train into a new directory"
        )
    if manifest.get("train_data") != train_data:
        raise TandemError(
            f"{model_dir}: these data differ from the data the run started with "
            f"({manifest.get('train_data', {}).get('pairs')} pairs); resume with the same data"
        )
    _check_writable(model_dir)
    restore_checkpoints(model_dir)
    last = find_checkpoint(model_dir, LAST)
    if last is None:
        if is_complete(manifest):
            raise TandemError(
                f"{model_dir}: training finished, and its last checkpoint "
                f"({checkpoint_root(model_dir) / LAST}) is gone: nothing to continue from"
            )
        raise TandemError(
            f"{model_dir}: no checkpoint to resume from (the run stopped in its first epoch, "
            "or before its first checkpoint was written); train without --resume to start over"
        )
    # An unfinished run whose checkpoints are all written (a kill before the model was saved)
    # resumes into just saving it; a finished one needs epochs left to do.
    if is_complete(manifest) and last.state.get("stopped_early"):
        raise TandemError(
            f"{model_dir}: training stopped early after epoch {last.epoch} (no better "
            f"{last.state.get('monitor', 'loss')}); nothing to resume"
        )
    done = last.epoch
    if config.train.epochs < done or (is_complete(manifest) and done >= config.train.epochs):
        raise TandemError(
            f"{model_dir}: {done} epochs done and train.epochs is {config.train.epochs}; "
            f"resume with --epochs above {done} to train further"
        )
    # Everything the run is read back from, checked before the directory is changed.
    last.history()
    source_vocab = Vocabulary.load(model_dir / SOURCE_VOCAB_FILE)
    target_vocab = Vocabulary.load(model_dir / TARGET_VOCAB_FILE)
    repair_best(model_dir, last)
    if is_complete(manifest):
        # Extending a finished run: until it finishes again the directory is an unfinished
        # run (config, history and checkpoints move on while model.keras is the old model), so
        # an interruption leaves it to be resumed, never loaded or averaged as if finished.
        manifest = {**manifest, "complete": False}
        write_json_atomically(model_dir / MANIFEST_FILE, manifest)
    if config != saved:  # only RESUMABLE_KEYS can differ here
        write_atomically(model_dir / CONFIG_FILE, config.save)
    return last, source_vocab, target_vocab, manifest


def _check_writable(model_dir: Path) -> None:
    """Refuse now, not after an epoch of training, a run that could not save its checkpoints."""
    for folder in (model_dir, checkpoint_root(model_dir)):
        if folder.is_dir():
            try:
                with tempfile.TemporaryFile(dir=folder):
                    pass
            except OSError as exc:
                raise TandemError(
                    f"{folder}: cannot write there ({exc.strerror or exc}), so the resumed run "
                    "could not save its checkpoints"
                ) from None


def repair_best(model_dir: Path, last: Checkpoint) -> None:
    """Rewrite the best checkpoint when a kill fell between writing `last` and `best`.

    The best is written right after the last of the same epoch, so the only way they can
    disagree is a best epoch equal to the last one, missing from `best/`.
    """
    best = find_checkpoint(model_dir, BEST)
    wanted = last.state.get("best_epoch")
    if wanted == last.epoch and (best is None or best.epoch != wanted):
        write_checkpoint(model_dir, BEST, last.state, copy_checkpoint_files(last.path))


def _flatten(config: dict) -> dict:
    return {
        f"{section}.{key}": value
        for section, values in config.items()
        for key, value in values.items()
    }
