"""Checkpoints: the whole training state, swapped in atomically at every epoch end."""

from __future__ import annotations

import csv
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from tandem.errors import CheckpointError
from tandem.files import fsync_dir, fsync_file
from tandem.model_dir import (
    BEST,
    HISTORY_FILE,
    LAST,
    OLD,
    STATE_FILE,
    STATE_FORMAT,
    STATE_VERSION,
    TEMPORARY,
    WEIGHTS_FILE,
    checkpoint_dir,
    checkpoint_root,
    read_checkpoint_state,
    read_history,
    snapshot_path,
    snapshot_paths,
    write_history,
)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint directory read back: its state, history and model archive."""

    path: Path
    state: dict

    @property
    def epoch(self) -> int:
        """Epochs completed; the resumed `fit` starts at this `initial_epoch`."""
        return self.state["epoch"]

    @property
    def model_path(self) -> Path:
        return self.path / WEIGHTS_FILE

    def history(self) -> list[dict]:
        """The history rows of the epochs it holds, one per epoch (numbered from 0).

        Raises:
            CheckpointError: a history.csv that is missing, unreadable, or not one row with a
                loss for each epoch: a resumed run would lose the rows, curve and all.
        """
        path = self.path / HISTORY_FILE
        try:
            rows = read_history(path)
        except (OSError, ValueError, TypeError, csv.Error) as exc:
            raise CheckpointError(f"{path}: cannot read the training history: {exc}") from None
        numbers = [row.get("epoch") for row in rows]
        if numbers != list(range(self.epoch)) or not all("loss" in row for row in rows):
            raise CheckpointError(
                f"{path}: damaged training history: expected a row with a loss for each of "
                f"the checkpoint's {self.epoch} epochs"
            )
        return rows


def find_checkpoint(model_dir: str | Path, name: str = LAST) -> Checkpoint | None:
    """The checkpoint `name` of a model directory, recovered from `NAME.old` if need be.

    Raises:
        CheckpointError: the checkpoint exists but its state cannot be read, or is missing
            (`write_checkpoint` puts `NAME` in place only whole, so that is damage).
    """
    found = read_checkpoint_state(model_dir, name)
    return Checkpoint(*found) if found is not None else None


def restore_checkpoints(model_dir: str | Path) -> None:
    """Put back a `NAME.old` left by a kill between the two renames of `swap_checkpoint`
    (it is complete; `NAME` is not there), so that no later step has to know about it."""
    for name in (LAST, BEST):
        final, old = checkpoint_dir(model_dir, name), checkpoint_dir(model_dir, name, OLD)
        if not final.exists() and (old / STATE_FILE).is_file():
            os.replace(old, final)
            fsync_dir(final.parent)


def write_checkpoint(
    model_dir: str | Path, name: str, state: dict, fill: Callable[[Path], None]
) -> Path:
    """Write checkpoint `name` atomically: `fill(directory)` writes its files, then state.json.

    The checkpoint is written whole into `NAME.tmp/` (`prepare_checkpoint`), then swapped in
    (`swap_checkpoint`). A kill at any point leaves `NAME` or, between the swap's two
    renames, `NAME.old` complete, and `find_checkpoint` reads `NAME` when it exists, else
    `NAME.old`. A leftover `NAME.tmp` is never read.

    Returns:
        The checkpoint directory.
    """
    checkpoint_root(model_dir).mkdir(parents=True, exist_ok=True)
    prepare_checkpoint(model_dir, name, state, fill)
    return swap_checkpoint(model_dir, name)


def prepare_checkpoint(
    model_dir: str | Path, name: str, state: dict, fill: Callable[[Path], None]
) -> Path:
    """Write checkpoint `name` into `NAME.tmp/`, state.json last, and flush it to disk.

    Returns:
        The `NAME.tmp` directory.
    """
    temporary = checkpoint_dir(model_dir, name, TEMPORARY)
    _remove(temporary)
    try:
        temporary.mkdir()
        fill(temporary)
        state = {"format": STATE_FORMAT, "version": STATE_VERSION, **state}
        (temporary / STATE_FILE).write_text(_state_json(state), encoding="utf-8")
        for path in temporary.iterdir():
            fsync_file(path)
        fsync_dir(temporary)
    except OSError as exc:
        if exc.filename is not None:
            raise
        # A full disk or a file-size limit says only "File too large": name what was written.
        raise OSError(exc.errno, exc.strerror or str(exc), str(temporary)) from exc
    return temporary


def swap_checkpoint(model_dir: str | Path, name: str) -> Path:
    """Put a prepared `NAME.tmp` in place of `NAME` with two renames, `NAME -> NAME.old` and
    `NAME.tmp -> NAME`, then delete `NAME.old`.

    Returns:
        The checkpoint directory.
    """
    final = checkpoint_dir(model_dir, name)
    old = checkpoint_dir(model_dir, name, OLD)
    if final.exists():
        _remove(old)  # a stale NAME.old: NAME is complete, so it is not needed
        os.replace(final, old)
    os.replace(checkpoint_dir(model_dir, name, TEMPORARY), final)
    fsync_dir(final.parent)
    _remove(old)
    return final


def save_training_model(model: keras.Model, directory: Path, history: list[dict]) -> None:
    """The `fill` of the last checkpoint: the compiled model (optimizer included) and history."""
    model.save(directory / WEIGHTS_FILE)
    write_history(directory / HISTORY_FILE, history)


def copy_checkpoint_files(source: Path) -> Callable[[Path], None]:
    """A `fill` that copies a written checkpoint's files (the best checkpoint from the last).

    The files are hard-linked where the file system allows (a checkpoint's files are never
    rewritten in place: the next one is written aside and swapped in), else copied.
    """

    def fill(directory: Path) -> None:
        for path in source.iterdir():
            if path.name != STATE_FILE:
                try:
                    os.link(path, directory / path.name)
                except OSError:
                    shutil.copyfile(path, directory / path.name)

    return fill


def save_snapshot(model: keras.Model, model_dir: str | Path, epoch: int, keep: int) -> None:
    """Write `epoch`'s trainable weights atomically; drop snapshots `keep` or more epochs older."""
    path = snapshot_path(model_dir, epoch)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp.npz")
    arrays = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    try:
        with open(temporary, "wb") as file:
            np.savez(file, *arrays)
        fsync_file(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_dir(path.parent)
    for old_epoch, old in snapshot_paths(model_dir).items():
        if old_epoch <= epoch - keep:
            old.unlink()


def average_snapshots(
    model: keras.Model, model_dir: str | Path, last: int, count: int
) -> list[int]:
    """Set `model`'s trainable weights to the mean of epochs `last - count + 1 .. last`.

    Epochs without a snapshot (from before averaging was switched on) are left out; with
    none at all, `model` is unchanged. Other variables (dropout RNG states) stay as they are.

    Returns:
        The epochs averaged, in order.

    Raises:
        CheckpointError: a snapshot that cannot be read or does not fit `model`.
    """
    variables = model.trainable_variables
    shapes = [tuple(v.shape) for v in variables]
    # Only the range that can hold snapshots is looked at, however large `count` is.
    epochs = [
        e for e in range(max(last - count + 1, 1), last + 1) if snapshot_path(model_dir, e).exists()
    ]
    total = None
    for epoch in epochs:
        path = snapshot_path(model_dir, epoch)
        try:
            with np.load(path) as archive:
                arrays = [archive[f"arr_{i}"] for i in range(len(archive.files))]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            # A truncated .npz fails in zipfile, or later while reading an array.
            raise CheckpointError(f"{path}: cannot read weight snapshot: {exc}") from None
        if [a.shape for a in arrays] != shapes:
            raise CheckpointError(f"{path}: the weight snapshot does not fit this model")
        arrays = [a.astype(np.float64) for a in arrays]
        total = arrays if total is None else [t + a for t, a in zip(total, arrays, strict=True)]
    if total is not None:
        for variable, summed in zip(variables, total, strict=True):
            variable.assign((summed / len(epochs)).astype(variable.dtype))
    return epochs


def restore_training_model(model: keras.Model, checkpoint: Checkpoint) -> None:
    """Load a checkpoint's weights, optimizer state and dropout RNG states into `model`.

    `model` must be built and compiled the same way as the model that was saved.
    """
    model.optimizer.build(model.trainable_variables)
    try:
        model.load_weights(checkpoint.model_path)
    except Exception as exc:  # Keras raises many kinds for a damaged archive
        raise CheckpointError(f"{checkpoint.model_path}: cannot load checkpoint: {exc}") from None
    # Keras does not save SeedGenerator states (dropout masks); state.json has them, in the
    # model's variable order (their names carry a process-wide counter, so they can't match).
    saved = checkpoint.state.get("seed_generators", [])
    variables = seed_generator_states(model)
    if len(saved) == len(variables):
        for variable, value in zip(variables, saved, strict=True):
            variable.assign(np.asarray(value, dtype=variable.dtype))


def seed_generator_states(model: keras.Model) -> list:
    """The RNG state variables of the model's layers (dropout), which `model.keras` omits."""
    return [v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state")]


def _state_json(state: dict) -> str:
    """One top-level key per line, each value compact (the shuffling state is long)."""
    lines = [
        f" {json.dumps(key)}: {json.dumps(value, separators=(',', ':'))}"
        for key, value in state.items()
    ]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
