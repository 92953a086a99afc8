"""Training options: gradient clipping, label smoothing, the plateau schedule; each with an effect."""

from __future__ import annotations

import itertools
import json
import zipfile

import keras
import numpy as np
import pytest

from conftest import StopAt
from tandem.cli import build_parser, main, train_config
from tandem.config import Config, ConfigError, TrainConfig
from tandem.errors import TandemError
from tandem.model_dir import load_model_dir, read_history
from tandem.training.losses import SparseLabelSmoothingCrossentropy, training_loss

WORDS = {"go": "va", "run": "cours", "stop": "arrête", "wait": "attends", "help": "aide"}
WORDS |= {"jump": "saute", "see": "vois", "eat": "mange", "sing": "chante", "read": "lis"}
PAIRS = [(f"{a} {b}.", f"{WORDS[a]} {WORDS[b]}.") for a, b in itertools.permutations(WORDS, 2)][:40]


def tiny_config(**train) -> Config:
    config = Config().replace("model", latent_dim=8, embedding_dim=8)
    return config.replace("train", **{"batch_size": 8, "validation_split": 0.2, **train})


# -- validation ------------------------------------------------------------------------------


def test_defaults_keep_the_previous_behaviour():
    train = TrainConfig()
    assert train.gradient_clip_norm is None and train.label_smoothing == 0.0
    assert train.lr_schedule == "constant"
    loss = training_loss(0.0)  # Keras's own, per real target token
    assert isinstance(loss, keras.losses.SparseCategoricalCrossentropy)
    assert loss.reduction == "mean_with_sample_weight"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"gradient_clip_norm": 0}, "train.gradient_clip_norm must be a finite number > 0"),
        ({"gradient_clip_norm": -1.0}, "train.gradient_clip_norm must be a finite number > 0"),
        ({"gradient_clip_norm": "1"}, "train.gradient_clip_norm must be a finite number > 0"),
        ({"label_smoothing": 1.0}, r"train.label_smoothing must be in \[0, 1\)"),
        ({"label_smoothing": -0.1}, r"train.label_smoothing must be in \[0, 1\)"),
        ({"label_smoothing": True}, r"train.label_smoothing must be in \[0, 1\)"),
        ({"lr_schedule": "cosine"}, "train.lr_schedule must be one of constant, plateau"),
        ({"lr_patience": 0}, "train.lr_patience must be a positive integer"),
        ({"lr_factor": 1.0}, r"train.lr_factor must be in \(0, 1\)"),
        ({"lr_factor": 0}, r"train.lr_factor must be in \(0, 1\)"),
        ({"learning_rate": float("nan")}, "train.learning_rate must be a finite number > 0"),
        ({"learning_rate": float("inf")}, "train.learning_rate must be a finite number > 0"),
        ({"seed": -1}, r"train.seed must be an integer in \[0, 2\*\*32 - 1\]"),
        ({"seed": 2**32}, r"train.seed must be an integer in \[0, 2\*\*32 - 1\]"),
        ({"seed": 1.5}, r"train.seed must be an integer in \[0, 2\*\*32 - 1\]"),
        ({"average_last": 0}, "train.average_last must be a positive integer"),
    ],
)
def test_bad_values_name_the_key(changes, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_dict({"train": changes})


def test_flags_reach_the_config():
    args = build_parser().parse_args(
        [
            "train",
            "data.tsv",
            "-o",
            "model",
            "--gradient-clip-norm",
            "1.5",
            "--label-smoothing",
            "0.1",
            "--lr-schedule",
            "plateau",
            "--lr-patience",
            "2",
            "--lr-factor",
            "0.25",
            "--average-last",
            "3",
            "--warmup-steps",
            "40",
            "--adam-beta-2",
            "0.98",
        ]
    )
    train = train_config(args).train
    assert (train.warmup_steps, train.adam_beta_2) == (40, 0.98)
    assert (train.gradient_clip_norm, train.label_smoothing) == (1.5, 0.1)
    assert (train.lr_schedule, train.lr_patience, train.lr_factor) == ("plateau", 2, 0.25)
    assert train.average_last == 3
    assert train_config(build_parser().parse_args(["train", "d", "-o", "m"])).train == TrainConfig()


def test_a_transformer_from_a_config_file_widens_its_embeddings_with_latent_dim(tmp_path):
    path = tmp_path / "transformer.json"
    model = {"family": "transformer", "latent_dim": 8, "embedding_dim": 8, "heads": 2}
    path.write_text(json.dumps({"model": model}))
    argv = ["train", "d", "-o", "m", "--config", str(path), "--latent-dim", "16"]
    config = train_config(build_parser().parse_args(argv))
    assert (config.model.latent_dim, config.model.embedding_dim) == (16, 16)


@pytest.mark.parametrize(
    "pairs, config, devices, error, message",
    [
        (PAIRS, {"model": {"latent_dim": 8}}, None, TypeError, "config must be a tandem.config"),
        (PAIRS, Config(), 0, TypeError, "devices must be a positive int, 'all' or None"),
        (PAIRS, Config(), "x", TypeError, "devices must be"),
        (PAIRS, Config(), True, TypeError, "devices must be"),
        ([], Config(), None, TandemError, "no sentence pairs to train on"),
        ("go\tva", Config(), None, TypeError, "not one string"),
        (["go\tva"], Config(), None, TypeError, r"pairs\[0\] must be a \(source, target\) pair"),
        ([("go", None)], Config(), None, TypeError, r"pairs\[0\]: the target must be a string"),
        ([("go", "va"), (" ", "un")], Config(), None, TandemError, r"pairs\[1\]: empty source"),
        # What no line of a file can hold: a target's line break would make two output lines.
        (
            [("go", "va\nun")],
            Config(),
            None,
            TandemError,
            r"pairs\[0\]: the target sentence holds a line break \('\\n'\) at character 3",
        ),
        (
            [("go", "va"), ("a\rb", "c")],
            Config(),
            None,
            TandemError,
            r"pairs\[1\]: the source sentence holds a carriage return",
        ),
        ([("g\0o", "va")], Config(), None, TandemError, r"source sentence holds a NUL"),
        (
            [("go", "v\ud800a")],
            Config(),
            None,
            TandemError,
            r"target sentence holds a lone surrogate \('\\ud800'\) at character 2",
        ),
    ],  # fmt: skip
)
def test_train_checks_its_arguments_before_writing_anything(
    tmp_path, pairs, config, devices, error, message
):
    from tandem.training import train

    with pytest.raises(error, match=message):
        train(pairs, config, tmp_path / "m", verbose=0, devices=devices)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "options, error, message",
    [
        (
            {"callbacks": [1]},
            TypeError,
            r"callbacks\[0\] must be a keras.callbacks.Callback, got 1",
        ),
        ({"resume": True, "overwrite": True}, TandemError, "overwrite replaces it: choose one"),
    ],
)
def test_train_checks_its_options_before_writing_anything(tmp_path, options, error, message):
    from tandem.training import train

    with pytest.raises(error, match=message):
        train(PAIRS, Config(), tmp_path / "m", verbose=0, **options)
    assert not (tmp_path / "m").exists()


def test_bad_flag_value_is_one_line_and_exit_2(tmp_path, capsys):
    code = main(["train", str(tmp_path / "x.tsv"), "-o", str(tmp_path / "m"), "--lr-factor", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "--lr-factor must be in (0, 1)" in err and err.count("\n") == 1


def test_train_hands_its_plan_to_on_start_before_the_first_epoch(tmp_path):
    from tandem.training import train

    events = []

    class Epochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            events.append(f"epoch {epoch + 1}")

    config = tiny_config(epochs=1).replace("data", max_target_length=10)
    result = train(PAIRS, config, tmp_path, verbose=0, callbacks=[Epochs()], on_start=events.append)
    plan, *epochs = events
    assert epochs == ["epoch 1"]
    assert (plan.train_pairs, plan.validation_pairs, plan.filtered_pairs) == (
        result.train_pairs,
        result.validation_pairs,
        result.filtered_pairs,
    )
    assert plan.filtered_pairs > 0 and plan.resumed_after is None
    assert plan.summary().startswith(f"training on {result.train_pairs} pairs, validating on ")


def test_train_plan_summary_is_the_line_tandem_train_writes():
    from tandem.training import TrainPlan

    plan = TrainPlan(9, 2, 1, source_tokens=28, target_tokens=33, resumed_after=3)
    assert plan.summary() == (
        "training on 9 pairs, validating on 2; 28 source and 33 target tokens; "
        "left out 1 pairs over the length limits; resuming after epoch 3"
    )
    fresh = TrainPlan(9, 2, 0, source_tokens=28, target_tokens=33, resumed_after=None)
    assert fresh.summary() == "training on 9 pairs, validating on 2; 28 source and 33 target tokens"


# -- label smoothing -------------------------------------------------------------------------


def test_label_smoothing_matches_keras_categorical_crossentropy():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(7), size=(3, 5)).astype("float32")  # (batch, steps, vocab)
    ids = rng.integers(0, 7, size=(3, 5))
    one_hot = np.eye(7, dtype="float32")[ids]
    for smoothing in (0.0, 0.1, 0.3):
        ours = SparseLabelSmoothingCrossentropy(smoothing)(ids, probs)
        keras_loss = keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)
        assert float(ours) == pytest.approx(float(keras_loss(one_hot, probs)), rel=1e-5)
    plain = keras.losses.SparseCategoricalCrossentropy()(ids, probs)
    assert float(SparseLabelSmoothingCrossentropy(0.0)(ids, probs)) == pytest.approx(
        float(plain), rel=1e-6
    )
    config = SparseLabelSmoothingCrossentropy(0.2).get_config()
    assert SparseLabelSmoothingCrossentropy.from_config(config).label_smoothing == 0.2


@pytest.fixture(scope="module")
def one_clipped_step(tmp_path_factory):
    """One SGD step (one batch, one epoch) at learning rate 1, gradients clipped to 1e-3."""
    from tandem.training import train

    output = tmp_path_factory.mktemp("clipped")
    config = tiny_config(
        epochs=1, batch_size=32, optimizer="sgd", learning_rate=1.0, gradient_clip_norm=1e-3
    )
    result = train(PAIRS, config, output, verbose=0)
    return config, output, result


@pytest.mark.slow
def test_gradient_clipping_bounds_every_update(one_clipped_step):
    from tandem.models import ModelDims, build_model

    config, output, result = one_clipped_step
    loaded = load_model_dir(output)
    # The initial weights, rebuilt as the trainer built them (seeded just before the model).
    keras.utils.set_random_seed(config.train.seed)
    initial = build_model(config.model, ModelDims(**loaded.manifest["dims"])).training_model
    changes = [
        float(np.linalg.norm(after - before))
        for before, after in zip(
            initial.get_weights(), loaded.model.training_model.get_weights(), strict=True
        )
    ]
    assert max(changes) <= 1e-3 * 1.001  # learning rate 1 x clip norm 1e-3, per tensor
    assert max(changes) > 1e-4  # and it did train
    with zipfile.ZipFile(output / "model.keras") as archive:
        saved = json.loads(archive.read("config.json"))
    assert saved["compile_config"]["optimizer"]["config"]["clipnorm"] == 1e-3


@pytest.mark.slow
def test_label_smoothing_changes_the_loss(one_clipped_step, tmp_path):
    from tandem.training import train

    config, _, plain = one_clipped_step
    # The only batch's loss is computed before the step, so clipping does not change it; the
    # untrained model is near uniform, where smoothing moves the loss only a little.
    smoothed = train(PAIRS, config.replace("train", label_smoothing=0.3), tmp_path, verbose=0)
    assert abs(smoothed.history[0]["loss"] - plain.history[0]["loss"]) > 1e-5
    assert smoothed.history[0]["accuracy"] == plain.history[0]["accuracy"]  # same predictions
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        loss = json.loads(archive.read("config.json"))["compile_config"]["loss"]
    assert loss["class_name"] == "SparseLabelSmoothingCrossentropy"
    assert loss["config"]["label_smoothing"] == 0.3


# -- the plateau schedule --------------------------------------------------------------------


@pytest.mark.slow
def test_plateau_cuts_the_learning_rate_and_the_cut_survives_a_resume(tmp_path):
    from tandem.training import TrainingInterrupted, train

    # At 1e-30 the weights never change, so val_loss is flat from the first epoch on.
    config = tiny_config(
        epochs=4,
        optimizer="sgd",
        learning_rate=1e-30,
        lr_schedule="plateau",
        lr_patience=1,
        lr_factor=0.5,
    )
    with pytest.raises(TrainingInterrupted, match="kept the checkpoint of epoch 3"):
        train(PAIRS, config, tmp_path, verbose=0, callbacks=[StopAt(epoch=3)])
    result = train(PAIRS, config, tmp_path, resume=True, verbose=0)
    rates = [row["learning_rate"] for row in read_history(tmp_path / "history.csv")]
    assert rates == pytest.approx([1e-30, 1e-30, 5e-31, 2.5e-31], rel=1e-6)
    assert result.initial_epoch == 3 and len(result.history) == 4


def test_max_samples_keeps_the_first_pairs_given_to_train(tmp_path):
    from tandem.training import train

    config = tiny_config(epochs=1).replace("data", max_samples=10)
    bad = [("", "vide")]  # beyond the first 10: never read, as a file's lines would not be
    result = train(PAIRS[:10] + bad + PAIRS[10:], config, tmp_path, verbose=0)
    assert (result.train_pairs, result.validation_pairs) == (8, 2)
    assert json.loads((tmp_path / "config.json").read_text())["data"]["max_samples"] == 10


def test_inverse_sqrt_schedule_values_and_config():
    from tandem.training.schedules import InverseSqrt

    schedule = InverseSqrt(1e-3, warmup_steps=100)
    rates = [float(schedule(step)) for step in (0, 49, 99, 399, 9999)]
    assert rates == pytest.approx([1e-5, 5e-4, 1e-3, 5e-4, 1e-4], rel=1e-5)
    assert InverseSqrt.from_config(schedule.get_config()).get_config() == schedule.get_config()


def test_inverse_sqrt_schedule_follows_the_steps_across_a_resume(tmp_path):
    from tandem.training import TrainingInterrupted, train
    from tandem.training.schedules import InverseSqrt

    config = tiny_config(
        epochs=4, optimizer="adam", learning_rate=0.01, lr_schedule="inverse_sqrt", warmup_steps=3
    )
    with pytest.raises(TrainingInterrupted, match="kept the checkpoint of epoch 2"):
        train(PAIRS, config, tmp_path, verbose=0, callbacks=[StopAt(epoch=2)])
    train(PAIRS, config, tmp_path, resume=True, verbose=0)
    rates = [row["learning_rate"] for row in read_history(tmp_path / "history.csv")]
    schedule = InverseSqrt(0.01, 3)
    # Each epoch starts at the schedule's rate for the optimizer steps taken before it; the
    # resumed epochs 3 and 4 carry on from the restored step count.
    fits = [
        steps
        for steps in range(1, 100)
        if rates == pytest.approx([float(schedule(e * steps)) for e in range(4)], rel=1e-5)
    ]
    assert len(fits) == 1 and rates[0] == pytest.approx(0.01 / 3)


@pytest.mark.slow
def test_validation_score_is_logged_every_n_epochs(tmp_path):
    from tandem.model_dir import read_history
    from tandem.training import train

    pairs = [(f"w{i}", f"m{i}") for i in range(12)] + [("w0", "m0bis")]
    config = Config().replace("model", latent_dim=8, embedding_dim=8)
    config = config.replace("train", epochs=3, batch_size=4, validation_split=0.4, score_every=2)
    train(pairs, config, tmp_path / "chars", verbose=0)
    history = read_history(tmp_path / "chars" / "history.csv")
    assert ["val_chrf" in row for row in history] == [False, True, False]
    assert 0.0 <= history[1]["val_chrf"] <= 100.0

    phonemes = [(word, " ".join(word.upper())) for word in ("cat", "bat", "tab", "act", "cab")]
    config = config.replace("data", target_tokens="word").replace("train", score_every=1)
    train(phonemes * 2, config, tmp_path / "words", verbose=0)
    history = read_history(tmp_path / "words" / "history.csv")
    assert all(0.0 <= row["val_wer"] <= 100.0 and "val_per" in row for row in history)


# -- checkpoint averaging --------------------------------------------------------------------


def _snapshot(model_dir, epoch) -> list[np.ndarray]:
    with np.load(model_dir / "checkpoints" / "epochs" / f"epoch-{epoch:04d}.npz") as archive:
        return [archive[f"arr_{i}"] for i in range(len(archive.files))]


def _saved_weights(model_dir) -> list[np.ndarray]:
    model = load_model_dir(model_dir).model.fit_model
    return [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]


def _manifest(model_dir) -> dict:
    return json.loads((model_dir / "manifest.json").read_text())


@pytest.mark.slow
def test_average_last_saves_the_mean_of_the_last_epochs(tmp_path):
    from tandem.training import train

    result = train(PAIRS, tiny_config(epochs=4, optimizer="adam", average_last=3), tmp_path)
    assert result.averaged_epochs == (2, 3, 4) and result.final_epoch == 4
    kept = sorted(p.name for p in (tmp_path / "checkpoints" / "epochs").iterdir())
    assert kept == ["epoch-0002.npz", "epoch-0003.npz", "epoch-0004.npz"]  # epoch 1 dropped
    snapshots = [_snapshot(tmp_path, epoch) for epoch in (2, 3, 4)]
    saved = _saved_weights(tmp_path)
    for index, weights in enumerate(saved):
        mean = np.mean([snapshot[index] for snapshot in snapshots], axis=0)
        np.testing.assert_allclose(weights, mean, rtol=1e-5, atol=1e-7)
    # The epochs differ, so the mean is not the last epoch's weights.
    assert any(not np.allclose(w, last) for w, last in zip(saved, snapshots[-1], strict=True))


@pytest.mark.slow
def test_average_last_can_be_switched_on_when_resuming(tmp_path):
    from tandem.training import TrainingInterrupted, train

    config = tiny_config(epochs=4, optimizer="adam")
    with pytest.raises(TrainingInterrupted):
        train(PAIRS, config, tmp_path, verbose=0, callbacks=[StopAt(epoch=2)])
    averaging = config.replace("train", average_last=3)
    result = train(PAIRS, averaging, tmp_path, resume=True, verbose=0)
    # Epoch 2 trained without snapshots: only the resumed epochs are averaged.
    assert result.averaged_epochs == (3, 4)
    assert Config.load(tmp_path / "config.json").train.average_last == 3
    saved = _saved_weights(tmp_path)
    three, four = _snapshot(tmp_path, 3), _snapshot(tmp_path, 4)
    for weights, a, b in zip(saved, three, four, strict=True):
        np.testing.assert_allclose(weights, (a + b) / 2, rtol=1e-5, atol=1e-7)
    # Any other change is still refused.
    other = averaging.replace("train", epochs=6, label_smoothing=0.2)
    with pytest.raises(Exception, match="train.label_smoothing"):
        train(PAIRS, other, tmp_path, resume=True, verbose=0)


@pytest.mark.slow
def test_average_last_ends_at_the_best_epoch_with_early_stopping(tmp_path):
    from tandem.training import train

    # At 1e-30 nothing changes, so epoch 1 stays best and patience 2 stops after epoch 3.
    config = tiny_config(
        epochs=10, optimizer="sgd", learning_rate=1e-30, patience=2, average_last=2
    )
    result = train(PAIRS, config, tmp_path, verbose=0)
    assert len(result.history) == 3 and result.final_epoch == 1
    assert result.averaged_epochs == (1,)  # there is no epoch 0 to average with
    kept = sorted(p.name for p in (tmp_path / "checkpoints" / "epochs").iterdir())
    assert kept == ["epoch-0001.npz", "epoch-0002.npz", "epoch-0003.npz"]  # 2 + patience 2


@pytest.mark.slow
def test_averaging_window_can_be_chosen_after_training(tmp_path, capsys):
    from tandem.training import average_model_dir, train
    from tandem.translator import Translator

    train(PAIRS, tiny_config(epochs=4, optimizer="adam", average_last=3), tmp_path, verbose=0)
    assert _manifest(tmp_path)["weights_epochs"] == [2, 3, 4]
    trained = _saved_weights(tmp_path)
    snapshots = {epoch: _snapshot(tmp_path, epoch) for epoch in (2, 3, 4)}

    assert average_model_dir(tmp_path, 2) == (3, 4)
    for weights, a, b in zip(_saved_weights(tmp_path), snapshots[3], snapshots[4], strict=True):
        np.testing.assert_allclose(weights, (a + b) / 2, rtol=1e-5, atol=1e-7)
    assert Config.load(tmp_path / "config.json").train.average_last == 2

    # One epoch is that epoch's weights; the snapshots stay, so the first window comes back.
    assert main(["average", str(tmp_path), "--last", "1"]) == 0
    assert "the mean of epoch 4" in capsys.readouterr().err
    for weights, four in zip(_saved_weights(tmp_path), snapshots[4], strict=True):
        np.testing.assert_array_equal(weights, four)
    # Epoch 1's snapshot was pruned in training: a window that needs it is refused (a mean
    # of fewer epochs than asked, recorded as the number asked, would misdescribe the model).
    for last in (5, 10**18):  # at once, however large
        with pytest.raises(TandemError) as refused:
            average_model_dir(tmp_path, last)
        assert str(refused.value).endswith(
            f"no weight snapshot of epoch 1 in {tmp_path / 'checkpoints' / 'epochs'}, so the "
            f"last {last} epochs cannot be averaged; the snapshots kept allow at most 3"
        )
    assert Config.load(tmp_path / "config.json").train.average_last == 1
    (tmp_path / "checkpoints" / "epochs" / "epoch-0003.npz").rename(tmp_path / "three.npz")
    with pytest.raises(TandemError, match="of epoch 3 in .* allow at most 1$"):
        average_model_dir(tmp_path, 3)
    (tmp_path / "three.npz").rename(tmp_path / "checkpoints" / "epochs" / "epoch-0003.npz")
    average_model_dir(tmp_path, 3)
    for weights, before in zip(_saved_weights(tmp_path), trained, strict=True):
        np.testing.assert_allclose(weights, before, rtol=1e-5, atol=1e-7)
    assert Translator.from_dir(tmp_path).translate(["go run."])[0]
    assert _manifest(tmp_path)["weights_epochs"] == [2, 3, 4]

    # --epoch ends the window at an earlier epoch: --last 1 goes back to that epoch alone.
    assert main(["average", str(tmp_path), "--last", "1", "--epoch", "2"]) == 0
    assert "the mean of epoch 2" in capsys.readouterr().err
    for weights, two in zip(_saved_weights(tmp_path), snapshots[2], strict=True):
        np.testing.assert_array_equal(weights, two)
    assert _manifest(tmp_path)["weights_epochs"] == [2]
    # config.json's average_last describes windows ending at the kept epoch: it stays.
    assert Config.load(tmp_path / "config.json").train.average_last == 3
    assert average_model_dir(tmp_path, 2, epoch=3) == (2, 3)
    for weights, a, b in zip(_saved_weights(tmp_path), snapshots[2], snapshots[3], strict=True):
        np.testing.assert_allclose(weights, (a + b) / 2, rtol=1e-5, atol=1e-7)
    assert _manifest(tmp_path)["weights_epochs"] == [2, 3]
    moved = _saved_weights(tmp_path)
    for argv, message in (
        (["--epoch", "5"], "training ran 4 epochs, so no window ends at epoch 5"),
        (["--epoch", "1"], "no weight snapshot of epoch 1 in "),
        (["--epoch", "0"], "the epoch to end the window at must be at least 1, got 0"),
    ):
        assert main(["average", str(tmp_path), "--last", "1", *argv]) == 2
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1
    for weights, before in zip(_saved_weights(tmp_path), moved, strict=True):
        np.testing.assert_array_equal(weights, before)
    assert main(["average", str(tmp_path), "--last", "3"]) == 0
    assert "the mean of epochs 2, 3, 4" in capsys.readouterr().err
    assert _manifest(tmp_path)["weights_epochs"] == [2, 3, 4]

    # A truncated snapshot is one line naming it, and the model is left as it was.
    snapshot = tmp_path / "checkpoints" / "epochs" / "epoch-0003.npz"
    snapshot.write_bytes(snapshot.read_bytes()[: snapshot.stat().st_size // 2])
    model = (tmp_path / "model.keras").read_bytes()
    assert main(["average", str(tmp_path), "--last", "3"]) == 2
    error = capsys.readouterr().err
    assert "epoch-0003.npz: cannot read weight snapshot" in error and error.count("\n") == 1
    assert (tmp_path / "model.keras").read_bytes() == model


def test_averaging_refuses_what_it_cannot_average(tiny_model_dir, tmp_path, capsys):
    weights = (tiny_model_dir / "model.keras").read_bytes()
    # Trained without --average-last: no snapshots, and the model is left as it was.
    assert main(["average", str(tiny_model_dir), "--last", "2"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("tandem: error: ") and "no weight snapshot of epochs 2-3" in error
    assert "\n" not in error and (tiny_model_dir / "model.keras").read_bytes() == weights
    assert main(["average", str(tiny_model_dir), "--last", "0"]) == 2
    assert "at least 1, got 0" in capsys.readouterr().err
    assert main(["average", str(tmp_path / "none"), "--last", "2"]) == 2
    assert "no such model directory" in capsys.readouterr().err
