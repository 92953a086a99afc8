"""Data-parallel training: batches every device can share, the same run as on one device."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import StopAt
from tandem.cli import main
from tandem.config import Config, ModelConfig
from tandem.data.batching import encode_pairs
from tandem.data.reading import read_pairs
from tandem.data.vocabulary import PAD_ID, Vocabulary
from tandem.model_dir import read_history
from tandem.models import ModelDims, build_model
from tandem.training import TrainingInterrupted
from tandem.training import train as train_in_process
from tandem.training.batches import TrainingBatches
from tandem.training.devices import ONE_DEVICE, Replicas
from tandem.training.losses import training_loss

PAIRS = [(f"{'ab' * (i % 7 + 1)}", f"{'cd' * (i % 5 + 1)}.") for i in range(29)]


def encoded_pairs():
    source, target = (
        Vocabulary.build([s for s, _ in PAIRS]),
        Vocabulary.build([t for _, t in PAIRS]),
    )
    return encode_pairs(PAIRS, source, target, 14, 13), len(source), len(target)


@pytest.mark.parametrize("mask_padding", [True, False])
def test_replicated_batches_split_evenly_and_keep_every_pair_once(mask_padding):
    encoded, _, _ = encoded_pairs()
    batches = TrainingBatches(encoded, 6, mask_padding=mask_padding, replicas=Replicas(count=4))
    weighted_rows = []
    for index in range(len(batches)):
        (source, decoder_inputs), targets, weights = batches[index]
        rows = batches.batches[index]
        assert len(source) % 4 == 0 and len(source) == len(targets) == len(weights)
        assert len(source) - len(rows) < 4
        real = weights.sum(axis=1) > 0
        assert real.sum() == len(rows)  # the filler rows weigh nothing
        np.testing.assert_array_equal(source[: len(rows)], encoded.padded(rows, source.shape[1])[0])
        weighted_rows += rows.tolist()
        if mask_padding:
            np.testing.assert_array_equal(weights > 0, (targets != PAD_ID) & real[:, None])
    assert sorted(weighted_rows) == list(range(len(PAIRS)))


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(latent_dim=8, embedding_dim=4),
        ModelConfig.seed(),
        ModelConfig(family="transformer", latent_dim=8, embedding_dim=8, heads=2, ff_dim=8),
    ],
)
def test_filler_rows_change_neither_loss_nor_gradient(config):
    encoded, source_size, target_size = encoded_pairs()
    keras.utils.set_random_seed(0)
    model = build_model(config, ModelDims(source_size, target_size, 14, 13)).fit_model
    model.compile(loss=training_loss(0.0))
    losses = []
    for replicas in (ONE_DEVICE, Replicas(count=4)):
        batches = TrainingBatches(
            encoded, 5, shuffle=False, mask_padding=config.mask_padding, replicas=replicas
        )
        inputs, targets, *weights = batches[0]
        assert len(targets) == (5 if replicas.count == 1 else 8)
        losses.append(
            model.evaluate(list(inputs), targets, sample_weight=(weights or [None])[0], verbose=0)
        )
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)


def test_each_process_feeds_its_share_of_the_same_steps():
    encoded, _, _ = encoded_pairs()

    def batches(replicas):
        return TrainingBatches(encoded, 8, shuffle=False, mask_padding=True, replicas=replicas)

    whole = batches(Replicas(count=4))
    shares = [batches(Replicas(count=4, process=process, processes=2)) for process in (0, 1)]
    for index in range(len(whole)):
        (source, _), targets, weights = whole[index]
        (source0, _), _, weights0 = shares[0][index]
        (source1, _), _, weights1 = shares[1][index]
        assert source0.shape == source1.shape == (len(source) // 2, source.shape[1])
        np.testing.assert_array_equal(source0, source[0::2])
        np.testing.assert_array_equal(source1, source[1::2])
        assert weights0.sum() + weights1.sum() == pytest.approx(weights.sum())


def test_bad_device_counts_are_refused(tiny_tsv, tmp_path, capsys, monkeypatch):
    assert main(["train", str(tiny_tsv), "-o", str(tmp_path / "m"), "--devices", "two"]) == 2
    assert "--devices must be a positive number or 'all'" in capsys.readouterr().err
    assert main(["train", str(tiny_tsv), "-o", str(tmp_path / "m"), "--devices", "64"]) == 2
    assert "only" in capsys.readouterr().err
    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "two")
    assert main(["train", str(tiny_tsv), "-o", str(tmp_path / "m"), "--devices", "all"]) == 2
    assert "KERAS_DISTRIBUTION_NUM_PROCESSES must be a positive number" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_data_parallel_run_matches_one_device_and_loads_on_one(tmp_path, tiny_tsv):
    """Three virtual CPU devices: the same losses and weights as one device; the saved model
    translates in this (single-device) process."""
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=3",
        "JAX_PLATFORMS": "cpu",
    }

    def train(name: str, *flags: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "tandem", "train", str(tiny_tsv), "-o", str(tmp_path / name)]
        options = ["--epochs", "3", "--batch-size", "6", "--latent-dim", "16", "-q"]
        return subprocess.run([*argv, *options, *flags], env=env, capture_output=True, text=True)

    # 12 pairs: 10 train in batches of 6 and 4, 2 validate: two batches need filler rows.
    one, many = train("one"), train("many", "--devices", "all")
    assert one.returncode == 0, one.stderr
    assert many.returncode == 0, many.stderr
    odd = train("odd", "--devices", "3", "--batch-size", "4")
    assert odd.returncode == 2 and "use a multiple of 3" in odd.stderr
    assert not (tmp_path / "odd").exists()

    histories = [read_history(tmp_path / name / "history.csv") for name in ("one", "many")]
    # The steps are the same, and the losses are means over the real tokens: the filler rows
    # (weight 0) count in neither.
    losses = [[row["loss"] for row in history] for history in histories]
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    val_losses = [[row["val_loss"] for row in history] for history in histories]
    assert val_losses[1] == pytest.approx(val_losses[0], rel=1e-5)

    # A run interrupted on one device (here, in this process) resumes on three.
    config = Config().replace("model", latent_dim=16).replace("train", epochs=3, batch_size=6)
    with pytest.raises(TrainingInterrupted):
        pairs = read_pairs(tiny_tsv).pairs
        train_in_process(
            pairs, config, tmp_path / "resumed", verbose=0, callbacks=[StopAt(epoch=1)]
        )
    resumed = train("resumed", "--resume", "--devices", "3")
    assert resumed.returncode == 0, resumed.stderr
    history = read_history(tmp_path / "resumed" / "history.csv")
    assert [row["loss"] for row in history] == pytest.approx(losses[0], rel=1e-4)

    import tandem

    names = ("one", "many", "resumed")
    translators = [tandem.Translator.from_dir(tmp_path / name) for name in names]
    weights = [t.model.training_model.get_weights() for t in translators]
    for other in weights[1:]:
        for a, b in zip(weights[0], other, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)
    sources = ["Go.", "Help!", "Wait!"]
    assert translators[1].translate(sources) == translators[0].translate(sources)
