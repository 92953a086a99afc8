"""Averaging a trained model directory's weights over a window of epochs, after training."""

from __future__ import annotations

from pathlib import Path

from tandem.errors import TandemError
from tandem.files import training_lock
from tandem.model_dir import load_model_dir, save_model_dir
from tandem.training.checkpoints import (
    BEST,
    LAST,
    average_snapshots,
    find_checkpoint,
    snapshot_path,
)

__all__ = ["average_model_dir"]


def average_model_dir(
    model_dir: str | Path, last: int, epoch: int | None = None
) -> tuple[int, ...]:
    """Save in `model_dir` the mean of the weights of the `last` epochs ending at the kept one,
    or at `epoch`: `last` 1 with an earlier `epoch` goes back to that epoch's weights.

    The kept epoch is the one training kept: the best with early stopping (`train.patience`),
    else the last. The window can be chosen after training (on a dev set, say) among the
    epochs whose snapshots `train.average_last` or `train.keep_checkpoints` kept in
    `checkpoints/epochs/`; a window with
    an epoch that has none is refused (training, by contrast, leaves out the epochs from
    before averaging was switched on). The model is rewritten atomically, and the manifest's
    `weights_epochs` says which epochs it holds; `train.average_last` in config.json too when
    the window ends at the kept epoch (it describes such windows). The checkpoints and snapshots
    stay, so another window can follow; resuming training goes on from the last epoch.

    Returns:
        The epochs averaged, in order.

    Raises:
        TandemError: `last` or `epoch` below 1, `epoch` beyond the last trained, an unfinished
            or foreign directory, or an epoch of the window without a snapshot.
    """
    if last < 1:
        raise TandemError(f"the number of epochs to average must be at least 1, got {last}")
    if epoch is not None and epoch < 1:
        raise TandemError(f"the epoch to end the window at must be at least 1, got {epoch}")
    with training_lock(Path(model_dir), create=False):
        return _average_model_dir(model_dir, last, epoch)


def _average_model_dir(model_dir: str | Path, last: int, epoch: int | None) -> tuple[int, ...]:
    loaded = load_model_dir(model_dir)
    final = find_checkpoint(loaded.path, LAST)
    best = find_checkpoint(loaded.path, BEST) if loaded.config.train.patience is not None else None
    kept = best or final
    if kept is None:
        raise TandemError(f"{loaded.path}: no checkpoint says which epoch training kept")
    trained = (final or kept).epoch
    if epoch is not None and epoch > trained:
        raise TandemError(
            f"{loaded.path}: training ran {trained} epoch{'s' if trained > 1 else ''}, "
            f"so no window ends at epoch {epoch}"
        )
    end = kept.epoch if epoch is None else epoch
    first = max(end - last + 1, 1)
    window = range(first, end + 1)
    missing = [e for e in window if not snapshot_path(loaded.path, e).exists()]
    folder = snapshot_path(loaded.path, end).parent
    if len(missing) == len(window):
        raise TandemError(
            f"{loaded.path}: no weight snapshot of "
            f"{f'epochs {first}-{end}' if first < end else f'epoch {end}'} in {folder} "
            "(train with --keep-checkpoints or --average-last to keep them)"
        )
    if missing:
        # Asked for after training, a mean of fewer epochs than asked is refused, not made.
        kept_run = next(n for n in range(1, len(window) + 1) if end - n + 1 in missing) - 1
        raise TandemError(
            f"{loaded.path}: no weight snapshot of epoch{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(str, missing))} in {folder}, so the last {last} epochs cannot be "
            f"averaged; the snapshots kept allow at most {kept_run}"
            if kept_run
            else f"{loaded.path}: no weight snapshot of epoch {end}"
            f"{', the kept one,' if end == kept.epoch else ''} in {folder}"
        )
    averaged = average_snapshots(loaded.model.fit_model, loaded.path, end, last)
    config = loaded.config
    if end == kept.epoch:
        # A window reaching back before epoch 1 is all the epochs: recorded as such.
        config = config.replace("train", average_last=min(last, end))
    save_model_dir(
        loaded.path,
        loaded.model,
        loaded.source_vocab,
        loaded.target_vocab,
        config,
        loaded.manifest.get("train_data"),
        weights_epochs=averaged,
    )
    return tuple(averaged)
