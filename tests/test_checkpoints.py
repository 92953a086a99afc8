"""Runs lose nothing: atomic checkpoints, kill -9 and Ctrl-C, resume, nan losses, the curve."""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from tandem.cli import main
from tandem.errors import ModelDirError
from tandem.model_dir import BEST, LAST, checkpoint_root, load_model_dir, read_history
from tandem.training import TrainingInterrupted
from tandem.training.callbacks import StopOnInterrupt
from tandem.training.checkpoints import (
    CheckpointError,
    copy_checkpoint_files,
    find_checkpoint,
    restore_checkpoints,
    write_checkpoint,
)

pytestmark = pytest.mark.slow

WORDS = {"go": "va", "run": "cours", "stop": "arrête", "wait": "attends", "help": "aide"}
WORDS |= {"jump": "saute", "see": "vois", "eat": "mange", "sing": "chante", "read": "lis"}
PAIRS = [(f"{a} {b}.", f"{WORDS[a]} {WORDS[b]}.") for a, b in itertools.permutations(WORDS, 2)][:40]
# Adam at 0.02 moves the loss visibly from one epoch to the next.
CONFIG = {
    "model": {"latent_dim": 8, "embedding_dim": 8},
    "train": {
        "epochs": 3,
        "batch_size": 8,
        "validation_split": 0.2,
        "optimizer": "adam",
        "learning_rate": 0.02,
    },
}
COMPARED = ("loss", "val_loss", "accuracy", "val_accuracy", "learning_rate")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """The data file, the config file, and the environment of the subprocesses (they share
    the session's JAX compilation cache, see conftest.py)."""
    root = tmp_path_factory.mktemp("corpus")
    data = root / "pairs.tsv"
    data.write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS), encoding="utf-8")
    config = root / "config.json"
    config.write_text(json.dumps(CONFIG), encoding="utf-8")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    return {"data": str(data), "config": str(config), "env": env, "root": root}


# `python -m tandem` with markers on stderr and pauses where a test interrupts it.
WITH_HOOKS = str(Path(__file__).with_name("train_with_hooks.py"))


class Train:
    """`tandem train` in a subprocess (see train_with_hooks.py); its stderr lines are collected
    as they come.

    Args:
        batch_pause: seconds to sleep after every training batch.
        checkpoint_pause: seconds to sleep before swapping in the checkpoint of `pause_epoch`.
    """

    def __init__(
        self,
        corpus: dict,
        output: Path,
        *flags: str,
        batch_pause: float = 0.0,
        checkpoint_pause: float = 0.0,
        pause_epoch: int | None = None,
    ):
        hooks = ["--batch-pause", str(batch_pause), "--checkpoint-pause", str(checkpoint_pause)]
        hooks += ["--pause-epoch", str(pause_epoch)] if pause_epoch is not None else []
        argv = [sys.executable, WITH_HOOKS, *hooks, "--", "train", corpus["data"]]
        self.process = subprocess.Popen(
            [*argv, "-o", str(output), "--config", corpus["config"], "-q", *flags],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=corpus["env"],
        )
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, text: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                self.process.kill()
                raise AssertionError(f"no {text!r} in time: {''.join(self.seen)}") from None
            if line is None:
                raise AssertionError(f"exited before {text!r}: {''.join(self.seen)}")
            self.seen.append(line)
            if text in line:
                return

    def finish(self, timeout: float = 180) -> tuple[int, str]:
        code = self.process.wait(timeout=timeout)
        while (line := self.lines.get(timeout=10)) is not None:
            self.seen.append(line)
        return code, "".join(self.seen)


def train_to_end(corpus: dict, output: Path, *flags: str) -> str:
    code, err = Train(corpus, output, *flags).finish()
    assert code == 0, err
    return err


@pytest.fixture(scope="module")
def reference(corpus) -> list[dict]:
    """The history of the same run, never interrupted."""
    output = corpus["root"] / "reference"
    train_to_end(corpus, output)
    return read_history(output / "history.csv")


def assert_continues(history: list[dict], reference: list[dict]) -> None:
    """One row per epoch, consecutive, with the uninterrupted run's values."""
    assert [row["epoch"] for row in history] == list(range(CONFIG["train"]["epochs"]))
    for row, expected in zip(history, reference, strict=True):
        for key in COMPARED:
            assert row[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), (row, expected)


def assert_translates(model_dir: Path) -> None:
    import tandem

    translator = tandem.Translator.from_dir(model_dir)
    assert len(translator.translate(["go run.", "see."])) == 2


def test_kill_mid_epoch_then_resume(corpus, reference, tmp_path):
    output = tmp_path / "model"
    # Slow batches leave the signal seconds to land in epoch 2 even on a loaded machine.
    run = Train(corpus, output, batch_pause=1.0)
    run.wait_for("checkpoint last epoch 1 written")
    run.wait_for("epoch 2 begin")
    time.sleep(0.4)  # inside epoch 2: its 4 batches take at least 4 s
    run.process.kill()
    run.finish()
    assert find_checkpoint(output, LAST).epoch == 1
    with pytest.raises(ModelDirError, match="training has not finished.*--resume"):
        load_model_dir(output)

    err = train_to_end(corpus, output, "--resume")
    assert "resumed after epoch 1" in err
    history = read_history(output / "history.csv")
    assert_continues(history, reference)
    # The curve continues: the first resumed epoch is the uninterrupted run's second epoch,
    # clearly lower than a fresh start's first epoch.
    assert history[1]["loss"] == pytest.approx(reference[1]["loss"], rel=1e-5)
    assert reference[0]["loss"] - history[1]["loss"] > 0.05
    assert_translates(output)


def test_kill_during_checkpoint_write_then_resume(corpus, reference, tmp_path):
    output = tmp_path / "model"
    run = Train(corpus, output, checkpoint_pause=120, pause_epoch=2)
    run.wait_for("checkpoint last epoch 2 writing")
    run.wait_for("checkpoint epoch 2 paused before the swap")
    run.process.kill()
    run.finish()
    root = checkpoint_root(output)
    assert (root / "last.tmp" / "state.json").is_file()  # written in full, never swapped in
    assert find_checkpoint(output, LAST).epoch == 1

    train_to_end(corpus, output, "--resume")
    assert not (root / "last.tmp").exists()
    assert_continues(read_history(output / "history.csv"), reference)
    assert find_checkpoint(output, LAST).epoch == 3
    assert_translates(output)


def test_ctrl_c_keeps_the_checkpoint_and_says_how_to_resume(corpus, tmp_path, capsys):
    output = tmp_path / "model"
    # Slow batches leave the signal seconds to land in epoch 2 even on a loaded machine.
    run = Train(corpus, output, batch_pause=1.0)
    run.wait_for("epoch 2 begin")
    run.process.send_signal(signal.SIGINT)
    code, err = run.finish()
    assert code == 130 and "Traceback" not in err
    message = err.strip().splitlines()[-1]
    assert message.startswith("tandem: interrupted in epoch 2; kept the checkpoint of epoch 1")
    assert str(checkpoint_root(output) / LAST) in message
    data, config = corpus["data"], corpus["config"]
    assert message.endswith(f"; resume with: tandem train {data} -o {output} --config {config} "
                            "-q --resume")  # fmt: skip

    # An unfinished run is never overwritten, and resumes only with its own config.
    assert main(["train", data, "-o", str(output), "--config", config, "-q"]) == 2
    assert "unfinished training run (checkpoint after epoch 1); continue it with --resume" in (
        capsys.readouterr().err
    )
    assert find_checkpoint(output, LAST).epoch == 1
    assert main(["train", data, "-o", str(output), "--resume", "--latent-dim", "16", "-q"]) == 2
    err = capsys.readouterr().err
    assert "model.latent_dim is 8 in config.json, 16 asked" in err and err.count("\n") == 1
    from tandem.config import Config
    from tandem.training.resume import config_differences

    wanted = Config().replace("train", learning_rate=0.01)
    assert config_differences(Config(), wanted) == [  # as the file spells it: null, not None
        "train.learning_rate is null in config.json, 0.01 asked"
    ]
    other = Path(corpus["root"]) / "other.tsv"
    other.write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS[:-1]), encoding="utf-8")
    assert main(["train", str(other), "-o", str(output), "--resume", "-q"]) == 2
    assert "differ from the data the run started with" in capsys.readouterr().err


def test_a_second_ctrl_c_on_the_way_out_ends_the_process_cleanly(corpus, tmp_path):
    run = Train(corpus, tmp_path / "model", batch_pause=1.0)
    run.wait_for("epoch 1 begin")
    run.process.send_signal(signal.SIGINT)
    run.wait_for("tandem: interrupted in epoch 1")
    run.process.send_signal(signal.SIGINT)  # as the process shuts down (JAX's exit handlers)
    code, err = run.finish()
    assert code == 130 and "Traceback" not in err, err


def test_sigterm_keeps_the_checkpoint_like_ctrl_c(corpus, tmp_path):
    output = tmp_path / "model"
    run = Train(corpus, output, batch_pause=1.0)
    run.wait_for("epoch 2 begin")
    run.process.send_signal(signal.SIGTERM)  # `kill`, a job scheduler, `docker stop`
    code, err = run.finish()
    assert code == 128 + signal.SIGTERM and "Traceback" not in err  # 143, as shells say
    message = err.strip().splitlines()[-1]
    assert message.startswith("tandem: interrupted in epoch 2; kept the checkpoint of epoch 1")
    assert find_checkpoint(output, LAST).epoch == 1


class InterruptsWhileFinalised:
    """Sends Ctrl-C to this process from a finaliser, where a raised KeyboardInterrupt is lost."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs here, inside __del__


@contextlib.contextmanager
def sigint(handler):
    """SIGINT goes to `handler` in the block, whatever the tests were started with (a
    background job, as CI may be, starts with SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_in_a_finaliser_still_stops_training_at_the_next_batch():
    with (
        sigint(signal.default_int_handler),
        StopOnInterrupt() as stop,
    ):  # Python's, as in a terminal
        assert signal.getsignal(signal.SIGINT) == stop._request
        stop.on_train_batch_begin(0)  # nothing asked yet
        InterruptsWhileFinalised()  # collected at once, so __del__ runs here
        assert stop.requested
        # The handler from before is back: a second Ctrl-C raises at once.
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        for hook in (stop.on_train_batch_begin, stop.on_test_batch_begin, stop.on_epoch_end):
            with pytest.raises(KeyboardInterrupt):
                hook(1)


def test_sigterm_is_recorded_and_its_default_comes_back():
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with StopOnInterrupt() as stop:
            assert signal.getsignal(signal.SIGTERM) == stop._request  # never kill without it
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
            assert stop.requested
            assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # a second one ends it
            with pytest.raises(KeyboardInterrupt):
                stop.on_train_batch_begin(0)
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("kind", ["ignored", "handled elsewhere"])
def test_ctrl_c_left_alone_when_sigint_is_ignored_or_handled_elsewhere(kind):
    calls = []
    handler = signal.SIG_IGN if kind == "ignored" else lambda signum, frame: calls.append(signum)
    with sigint(handler):
        with StopOnInterrupt() as stop:
            assert signal.getsignal(signal.SIGINT) == handler
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
        assert not stop.requested
        assert signal.getsignal(signal.SIGINT) == handler
    assert calls == ([] if kind == "ignored" else [signal.SIGINT])


def test_resume_with_more_epochs_extends_a_finished_run(corpus, reference, tmp_path, capsys):
    output = tmp_path / "model"
    shutil.copytree(corpus["root"] / "reference", output)  # finished after its 3 epochs
    data = corpus["data"]
    assert main(["train", data, "-o", str(output), "--resume", "-q"]) == 2
    assert "3 epochs done and train.epochs is 3; resume with --epochs above 3" in (
        capsys.readouterr().err
    )

    err = train_to_end(corpus, output, "--resume", "--epochs", "5")
    assert "resumed after epoch 3" in err
    longer = tmp_path / "longer"
    train_to_end(corpus, longer, "--epochs", "5")  # the same 5 epochs in one go
    history, expected = read_history(output / "history.csv"), read_history(longer / "history.csv")
    assert [row["epoch"] for row in history] == [0, 1, 2, 3, 4]
    for row, want in zip(history, expected, strict=True):
        for key in COMPARED:
            assert row[key] == pytest.approx(want[key], rel=1e-5, abs=1e-7), (row, want)
    assert history[:3] == read_history(corpus["root"] / "reference" / "history.csv")
    assert json.loads((output / "config.json").read_text())["train"]["epochs"] == 5
    assert find_checkpoint(output, LAST).epoch == 5
    assert_translates(output)

    # Now a plain --resume reads 5 epochs from the config: finished again.
    assert main(["train", data, "-o", str(output), "--resume", "-q"]) == 2
    assert "5 epochs done and train.epochs is 5" in capsys.readouterr().err


def test_an_extension_interrupted_leaves_an_unfinished_run(corpus, reference, tmp_path, capsys):
    output = tmp_path / "model"
    shutil.copytree(corpus["root"] / "reference", output)  # finished after its 3 epochs
    run = Train(corpus, output, "--resume", "--epochs", "5", batch_pause=1.0)
    run.wait_for("epoch 4 begin")
    run.process.send_signal(signal.SIGINT)
    code, err = run.finish()
    assert code == 130 and "Traceback" not in err, err
    assert "interrupted in epoch 4; kept the checkpoint of epoch 3" in err
    # config.json and history.csv describe the extension, model.keras the old run: the
    # directory is an unfinished run, not a finished model.
    assert json.loads((output / "config.json").read_text())["train"]["epochs"] == 5
    with pytest.raises(ModelDirError, match="training has not finished.*--resume"):
        load_model_dir(output)
    assert main(["average", str(output), "--last", "2"]) == 2
    assert "training has not finished" in capsys.readouterr().err

    err = train_to_end(corpus, output, "--resume", "--epochs", "5")
    assert "resumed after epoch 3" in err
    assert [row["epoch"] for row in read_history(output / "history.csv")] == [0, 1, 2, 3, 4]
    assert_translates(output)


@pytest.mark.parametrize(
    "damage, message",
    [
        ("garbage,x\n", "damaged training history: expected a row with a loss for each of the "
         "checkpoint's 3 epochs"),
        ("epoch,loss\n0,0.5\n1,0.4\n", "damaged training history"),  # a row lost
        ("epoch,loss\n0,0.5\n1,x\n2,0.3\n", "cannot read the training history"),
        (None, "training finished, and its last checkpoint"),  # checkpoints/last deleted
    ],
)  # fmt: skip
def test_a_damaged_last_checkpoint_is_named_and_the_finished_model_kept(
    corpus, reference, tmp_path, capsys, damage, message
):
    output = tmp_path / "model"
    shutil.copytree(corpus["root"] / "reference", output)  # finished after its 3 epochs
    last = checkpoint_root(output) / LAST
    if damage is None:
        shutil.rmtree(last)
    else:
        (last / "history.csv").write_text(damage)
    data = corpus["data"]
    assert main(["train", data, "-o", str(output), "--resume", "--epochs", "5", "-q"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert load_model_dir(output).config.train.epochs == 3  # still the finished model


def test_a_directory_that_cannot_be_written_is_refused_before_training(
    corpus, reference, tmp_path, capsys
):
    import subprocess

    output = tmp_path / "model"
    shutil.copytree(corpus["root"] / "reference", output)  # finished after its 3 epochs
    # Root writes through permissions; the immutable attribute stops it too.
    if os.geteuid() == 0:
        locked = subprocess.run(["chattr", "+i", str(output)], capture_output=True).returncode
        if locked != 0:
            pytest.skip("needs chattr (running as root, permissions do not stop writes)")
        unlock = ["chattr", "-i", str(output)]
    else:
        output.chmod(0o555)
        unlock = ["chmod", "755", str(output)]
    try:
        code = main(["train", corpus["data"], "-o", str(output), "--resume", "--epochs", "5", "-q"])
        err = capsys.readouterr().err
    finally:
        subprocess.run(unlock, check=True)
    assert code == 2 and f"{output}: cannot write there" in err and err.count("\n") == 1, err
    assert find_checkpoint(output, LAST).epoch == 3  # nothing trained


def test_a_run_stopped_early_is_not_extended(corpus, reference, tmp_path, capsys):
    output = tmp_path / "model"
    shutil.copytree(corpus["root"] / "reference", output)
    last = find_checkpoint(output, LAST)
    write_checkpoint(
        output, LAST, {**last.state, "stopped_early": True}, copy_checkpoint_files(last.path)
    )
    data = corpus["data"]
    assert main(["train", data, "-o", str(output), "--resume", "--epochs", "9", "-q"]) == 2
    err = capsys.readouterr().err
    assert "training stopped early after epoch 3 (no better val_loss); nothing to resume" in err


def test_resume_with_nothing_to_resume(corpus, tmp_path, capsys):
    data = corpus["data"]
    assert main(["train", data, "-o", str(tmp_path / "none"), "--resume"]) == 2
    assert "no training run to resume" in capsys.readouterr().err


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(corpus, tmp_path, capsys):
    # A learning rate near float32's limit overflows the weights in the first epoch.
    output = tmp_path / "model"
    flags = ["--config", corpus["config"], "--learning-rate", "1e38", "-q"]
    assert main(["train", corpus["data"], "-o", str(output), *flags]) == 2
    err = capsys.readouterr().err
    assert "loss became nan at epoch 1; no epoch ended with a finite loss" in err
    assert err.count("\n") == 1 and find_checkpoint(output) is None
    assert main(["train", corpus["data"], "-o", str(output), *flags, "--resume"]) == 2
    assert "no checkpoint to resume from" in capsys.readouterr().err


class PoisonWeights(keras.callbacks.Callback):
    """Sets one weight to nan at the start of an epoch (stands in for a diverging run)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.at_epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            variable = self.model.trainable_variables[0]
            variable.assign(np.full(variable.shape, np.nan, dtype="float32"))


def test_nan_weights_never_overwrite_the_last_good_checkpoint(tmp_path):
    from tandem.config import Config
    from tandem.training import TrainingDiverged, train

    config = Config.from_dict(CONFIG).replace("train", epochs=2)
    with pytest.raises(TrainingDiverged) as caught:
        train(PAIRS, config, tmp_path, verbose=0, callbacks=[PoisonWeights(epoch=1)])
    last = checkpoint_root(tmp_path) / LAST
    assert (
        str(caught.value) == f"loss became nan at epoch 2; last good checkpoint: epoch 1 in {last}"
    )
    checkpoint = find_checkpoint(tmp_path, LAST)
    assert checkpoint.epoch == 1 and len(checkpoint.history()) == 1
    weights = keras.saving.load_model(checkpoint.model_path, compile=False).get_weights()
    assert all(np.isfinite(w).all() for w in weights)
    assert len(read_history(tmp_path / "history.csv")) == 1  # no nan row

    # The kept checkpoint resumes, optimizer state included, to the end.
    result = train(PAIRS, config, tmp_path, resume=True, verbose=0)
    assert [row["epoch"] for row in result.history] == [0, 1]
    assert all(math.isfinite(row["loss"]) for row in result.history)


def test_reload_restores_the_optimizer_state(corpus, reference):
    from tandem.config import Config
    from tandem.models import ModelDims, build_model
    from tandem.training.checkpoints import restore_training_model

    model_dir = Path(corpus["root"]) / "reference"
    checkpoint = find_checkpoint(model_dir, LAST)
    config = Config.load(model_dir / "config.json")
    manifest = json.loads((model_dir / "manifest.json").read_text())
    model = build_model(config.model, ModelDims(**manifest["dims"])).training_model
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy")
    restore_training_model(model, checkpoint)
    assert int(model.optimizer.iterations) == 3 * 4  # 3 epochs of 4 batches
    saved = keras.saving.load_model(checkpoint.model_path, compile=False)
    for restored, expected in zip(model.get_weights(), saved.get_weights(), strict=True):
        np.testing.assert_array_equal(restored, expected)
    assert find_checkpoint(model_dir, BEST).state["best_epoch"] == 3


def test_learning_curve_is_a_png(corpus, reference):
    model_dir = Path(corpus["root"]) / "reference"
    assert (model_dir / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["train_data"]["pairs"] == len(PAIRS)


def test_the_curve_is_redrawn_at_most_once_a_minute_and_at_the_end(tmp_path, monkeypatch):
    from tandem.config import Config
    from tandem.training import callbacks, train

    drawn = []  # epochs in each drawing
    monkeypatch.setattr(
        callbacks, "draw_learning_curve", lambda rows, path: drawn.append(len(rows))
    )
    config = Config.from_dict(CONFIG).replace("train", epochs=4)
    train(PAIRS, config, tmp_path / "slow", verbose=0)
    assert drawn == [1, 4]  # the first epoch, then the end (epochs take far less than 60 s)

    class CtrlCAtEpoch3(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    drawn.clear()
    with pytest.raises(TrainingInterrupted):
        train(PAIRS, config, tmp_path / "stopped", verbose=0, callbacks=[CtrlCAtEpoch3()])
    assert drawn == [1, 2]  # interrupted: the curve shows the epochs checkpointed

    monkeypatch.setattr(callbacks, "CURVE_INTERVAL_SECONDS", 0.0)
    drawn.clear()
    train(PAIRS, config, tmp_path / "every", verbose=0)
    assert drawn == [1, 2, 3, 4]


def test_the_best_checkpoint_shares_the_last_ones_files(tmp_path):
    last = write_dummy(tmp_path, 1)
    best = write_checkpoint(tmp_path, BEST, {"epoch": 1}, copy_checkpoint_files(last))
    assert (best / "model.keras").read_bytes() == (last / "model.keras").read_bytes()
    write_dummy(tmp_path, 2)  # the next last checkpoint never changes best's files
    assert find_checkpoint(tmp_path, BEST).epoch == 1
    assert (best / "model.keras").read_text() == "weights of epoch 1"


# -- the swap itself, without training -------------------------------------------------------


def write_dummy(model_dir: Path, epoch: int, name: str = LAST) -> Path:
    def fill(directory: Path) -> None:
        (directory / "model.keras").write_text(f"weights of epoch {epoch}")

    return write_checkpoint(model_dir, name, {"epoch": epoch}, fill)


def test_swap_replaces_the_checkpoint_and_leaves_no_debris(tmp_path):
    write_dummy(tmp_path, 1)
    write_dummy(tmp_path, 2)
    assert find_checkpoint(tmp_path).epoch == 2
    assert sorted(p.name for p in checkpoint_root(tmp_path).iterdir()) == [LAST]


def test_killed_between_the_renames_recovers_from_old(tmp_path):
    write_dummy(tmp_path, 1)
    root = checkpoint_root(tmp_path)
    os.replace(root / LAST, root / "last.old")  # the state between the two renames
    assert find_checkpoint(tmp_path).epoch == 1
    write_dummy(tmp_path, 2)  # the next write keeps last.old until its own last is in place
    assert find_checkpoint(tmp_path).epoch == 2 and not (root / "last.old").exists()
    # A resumed run puts it back first, so none is left when no epoch follows.
    os.replace(root / LAST, root / "last.old")
    restore_checkpoints(tmp_path)
    assert sorted(p.name for p in root.iterdir()) == [LAST] and find_checkpoint(tmp_path).epoch == 2


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path):
    write_dummy(tmp_path, 1)

    def broken(directory: Path) -> None:
        (directory / "model.keras").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_checkpoint(tmp_path, LAST, {"epoch": 2}, broken)
    checkpoint = find_checkpoint(tmp_path)
    assert checkpoint.epoch == 1
    assert checkpoint.model_path.read_text() == "weights of epoch 1"
    shutil.rmtree(checkpoint_root(tmp_path) / "last.tmp")


def test_best_is_repaired_when_killed_between_last_and_best(tmp_path):
    from tandem.training.resume import repair_best

    write_dummy(tmp_path, 1, BEST)
    write_checkpoint(
        tmp_path,
        LAST,
        {"epoch": 2, "best_epoch": 2},
        lambda d: (d / "model.keras").write_text("weights of epoch 2"),
    )
    repair_best(tmp_path, find_checkpoint(tmp_path, LAST))
    best = find_checkpoint(tmp_path, BEST)
    assert best.epoch == 2 and best.model_path.read_text() == "weights of epoch 2"


def test_a_damaged_checkpoint_is_named_and_nothing_is_thrown_away(tmp_path):
    from tandem.model_dir import MANIFEST_FILE, _manifest
    from tandem.models import ModelDims
    from tandem.training.resume import check_fresh_run, clear_run

    write_dummy(tmp_path, 2)
    write_dummy(tmp_path, 1, BEST)
    manifest = _manifest(ModelDims(5, 6, 7, 8), complete=False, train_data=None)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    (checkpoint_root(tmp_path) / LAST / "state.json").unlink()
    with pytest.raises(CheckpointError, match=r"last/state.json: missing; the checkpoint is dam"):
        find_checkpoint(tmp_path, LAST)
    # Starting over would delete the intact best checkpoint too: refused, both left in place.
    with pytest.raises(CheckpointError, match="the checkpoint is damaged"):
        check_fresh_run(tmp_path)
    assert find_checkpoint(tmp_path, BEST).epoch == 1
    # Unless asked to start over.
    clear_run(check_fresh_run(tmp_path, overwrite=True))
    assert not checkpoint_root(tmp_path).exists() and (tmp_path / MANIFEST_FILE).exists()


def test_a_failed_checkpoint_write_names_the_checkpoint_and_keeps_the_last(tmp_path):
    import errno

    write_dummy(tmp_path, 1)

    def full_disk(directory):  # a write that fails as a file-size limit does: no file named
        raise OSError(errno.EFBIG, "File too large")

    with pytest.raises(OSError) as info:
        write_checkpoint(tmp_path, LAST, {"epoch": 2}, full_disk)
    assert info.value.filename == str(checkpoint_root(tmp_path) / "last.tmp")
    assert info.value.strerror == "File too large"
    assert find_checkpoint(tmp_path, LAST).epoch == 1  # the one before stays
