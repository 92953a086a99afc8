"""`tandem` with test hooks: markers on stderr, and pauses where a test interrupts training."""

# python tests/train_with_hooks.py [--batch-pause S] [--checkpoint-pause S [--pause-epoch N]] \
#     -- train DATA -o DIR ...
#
# Markers (`tandem-test: ...` lines on stderr) say when an epoch begins and when a checkpoint
# is being written and has been written. --batch-pause sleeps after every training batch, so a
# signal lands mid-epoch; --checkpoint-pause sleeps once a checkpoint is written in full into
# NAME.tmp/, before its swap (at epoch --pause-epoch only, if given), so a kill lands there.
# The hooks are a Keras callback passed to `tandem.training.train` and wrappers around the two
# steps of `tandem.training.checkpoints.write_checkpoint`; the command line then runs as
# `python -m tandem` does (`tandem.cli.main`), with Python's Ctrl-C handler.

from __future__ import annotations

import argparse
import json
import signal
import sys
import time


def parse_hooks(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The hook options, and the tandem command line after `--`."""
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="train_with_hooks.py")
    parser.add_argument("--batch-pause", type=float, default=0.0)
    parser.add_argument("--checkpoint-pause", type=float, default=0.0)
    parser.add_argument("--pause-epoch", type=int)
    return parser.parse_args(argv[:split]), argv[split + 1 :]


def marker(text: str) -> None:
    print(f"tandem-test: {text}", file=sys.stderr, flush=True)


def install_hooks(hooks: argparse.Namespace) -> None:
    """Wrap `train` to add the callback, and the checkpoint steps to mark and pause them."""
    import keras

    import tandem.training
    from tandem.model_dir import STATE_FILE, TEMPORARY, checkpoint_dir
    from tandem.training import checkpoints

    class EpochMarkersAndSlowBatches(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            marker(f"epoch {epoch + 1} begin")

        def on_train_batch_end(self, batch, logs=None):
            time.sleep(hooks.batch_pause)

    train = tandem.training.train

    def train_with_hooks(*args, callbacks=(), **kwargs):
        # Passed last, so after the checkpointer: "epoch N begin" means epoch N - 1 is saved.
        callbacks = [*callbacks, EpochMarkersAndSlowBatches()]
        return train(*args, callbacks=callbacks, **kwargs)

    # Before the command line is imported, in the package and in the module that defines it,
    # wherever the command line takes it from.
    for module in (tandem.training, sys.modules[train.__module__]):
        module.train = train_with_hooks

    prepare, swap = checkpoints.prepare_checkpoint, checkpoints.swap_checkpoint

    def prepare_with_marker(model_dir, name, state, fill):
        marker(f"checkpoint {name} epoch {state['epoch']} writing")
        return prepare(model_dir, name, state, fill)

    def swap_with_pause(model_dir, name):
        state_path = checkpoint_dir(model_dir, name, TEMPORARY) / STATE_FILE
        epoch = json.loads(state_path.read_text(encoding="utf-8"))["epoch"]
        wanted = hooks.pause_epoch is None or hooks.pause_epoch == epoch
        if hooks.checkpoint_pause > 0 and wanted:
            marker(f"checkpoint epoch {epoch} paused before the swap")
            time.sleep(hooks.checkpoint_pause)
        final = swap(model_dir, name)
        marker(f"checkpoint {name} epoch {epoch} written")
        return final

    checkpoints.prepare_checkpoint = prepare_with_marker
    checkpoints.swap_checkpoint = swap_with_pause


def run(argv: list[str]) -> int:
    # A shell starts background jobs with SIGINT ignored, and Python then keeps it ignored,
    # whatever runs the tests: Python's Ctrl-C handler, as in a terminal.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from tandem.allocator import relaunch

    # As `tandem` does first, but re-running this script (with its hooks), not `-m tandem`;
    # in the re-run process, `main` sees the allocator settings in place and runs on.
    relaunch([sys.executable, __file__, *argv])
    hooks, tandem_argv = parse_hooks(argv)
    install_hooks(hooks)
    from tandem.cli import main

    sys.argv = [sys.argv[0], *tandem_argv]
    return main()  # as a program (no argv): its handling of a second Ctrl-C on the way out


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
