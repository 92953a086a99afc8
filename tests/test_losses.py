"""The loss per real target token: in each step, in the history, and in `tandem evaluate`."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from conftest import TINY_PAIRS, write_tsv
from tandem.cli import main
from tandem.config import Config, ModelConfig
from tandem.data.batching import encode_pairs
from tandem.evaluation.likelihood import teacher_forced_cross_entropy
from tandem.model_dir import read_history
from tandem.training import train
from tandem.training.losses import TokenMean, token_metrics, training_loss
from tandem.translator import Translator


def batch(steps: int, seed: int):
    """Ids (2, steps), probabilities (2, steps, 5) and weights (2, steps): row 1 half padding."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(5), size=(2, steps)).astype("float32")
    ids = rng.integers(1, 5, size=(2, steps))
    weights = np.ones((2, steps), dtype="float32")
    weights[1, steps // 2 :] = 0.0
    return ids, probs, weights


def per_token(ids, probs, weights, smoothing=0.0):
    """The loss of every weighted token, in numpy, and how many there are."""
    true = np.take_along_axis(probs, ids[..., None], axis=-1)[..., 0]
    nll = -(1 - smoothing) * np.log(true) - smoothing * np.log(probs).mean(axis=-1)
    return float((nll * weights).sum()), float(weights.sum())


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_a_batch_loss_is_its_mean_over_the_real_tokens(smoothing):
    ids, probs, weights = batch(6, seed=0)
    total, tokens = per_token(ids, probs, weights, smoothing)
    loss = float(training_loss(smoothing)(ids, probs, sample_weight=weights))
    assert loss == pytest.approx(total / tokens, rel=1e-5)
    # Keras's default divides by batch x steps, padding included: 12 where 9 tokens are real.
    default = keras.losses.SparseCategoricalCrossentropy()(ids, probs, sample_weight=weights)
    if smoothing == 0.0:
        assert float(default) == pytest.approx(total / 12, rel=1e-5)


def test_the_logged_loss_weighs_the_tokens_of_batches_of_any_width_alike():
    """Length-bucketed batches have different widths; every token weighs the same."""
    batches = [batch(4, seed=1), batch(12, seed=2)]
    for smoothing in (0.0, 0.2):
        loss_metric, accuracy_metric = token_metrics(smoothing)
        for ids, probs, weights in batches:
            loss_metric.update_state(ids, probs, weights)
            accuracy_metric.update_state(ids, probs, weights)
        sums = [per_token(*one, smoothing) for one in batches]
        expected = sum(total for total, _ in sums) / sum(tokens for _, tokens in sums)
        assert float(loss_metric.result()) == pytest.approx(expected, rel=1e-5)
        right = sum(
            ((probs.argmax(-1) == ids) * weights).sum() for ids, probs, weights in batches
        ) / sum(weights.sum() for *_, weights in batches)
        assert float(accuracy_metric.result()) == pytest.approx(right, rel=1e-6)
    # Without weights (unmasked models) every step counts.
    metric = TokenMean(keras.metrics.sparse_categorical_accuracy, "accuracy")
    ids, probs, _ = batches[0]
    metric.update_state(ids, probs)
    assert float(metric.result()) == pytest.approx((probs.argmax(-1) == ids).mean())


PAIRS = TINY_PAIRS * 2  # 24 pairs: 16 train, 8 validate


def tiny_run(tmp_path, model: ModelConfig):
    config = Config(model=model).replace(
        "train", epochs=2, batch_size=5, validation_split=1 / 3, seed=3
    )
    result = train(PAIRS, config, tmp_path / "model", verbose=0)
    assert result.validation_pairs == 8
    return result


def evaluate_json(model_dir, data, *options, capsys) -> dict:
    assert main(["evaluate", str(model_dir), str(data), "--format", "json", *options]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_evaluate_cross_entropy_is_the_history_val_loss_at_any_batch_size(tmp_path, capsys):
    """Masked, no label smoothing: `tandem evaluate` on the run's validation pairs (the last
    third, as the run splits them) gives the last epoch's val_loss, at any --batch-size."""
    result = tiny_run(tmp_path, ModelConfig(latent_dim=8, embedding_dim=8, dropout=0.2))
    validation = PAIRS[result.train_pairs :]
    path = write_tsv(tmp_path / "validation.tsv", validation)
    report = evaluate_json(result.model_dir, path, "--batch-size", "7", capsys=capsys)
    assert report["cross_entropy_tokens"] == sum(len(t) + 1 for _, t in validation)
    assert report["perplexity"] == pytest.approx(np.exp(report["cross_entropy"]))
    val_loss = read_history(result.model_dir / "history.csv")[-1]["val_loss"]
    assert report["cross_entropy"] == pytest.approx(val_loss, rel=1e-4)
    one_by_one = teacher_forced_cross_entropy(Translator.from_dir(result.model_dir), validation, 1)
    assert one_by_one["cross_entropy"] == pytest.approx(report["cross_entropy"], rel=1e-6)


@pytest.mark.slow
def test_the_seed_preset_counts_padding_as_the_example_does(tmp_path):
    """Unmasked (the seed's): every step of the full width counts in the loss, padding too."""
    result = tiny_run(tmp_path, ModelConfig.seed(latent_dim=8))
    translator = Translator.from_dir(result.model_dir)
    dims = translator.model.dims
    encoded = encode_pairs(
        PAIRS[16:],
        translator.source_vocab,
        translator.target_vocab,
        dims.max_encoder_seq_length,
        dims.max_decoder_seq_length,
    )
    source, decoder_inputs, targets = encoded.padded()  # (8, full widths)
    probs = np.asarray(translator.model.fit_model.predict_on_batch([source, decoder_inputs]))
    true = np.take_along_axis(probs, targets[..., None], axis=-1)[..., 0]
    every_step = float(-np.log(true).mean())  # padding steps included
    assert result.history[-1]["val_loss"] == pytest.approx(every_step, rel=1e-4)
    real = targets != 0
    assert real.mean() < 0.9  # so counting padding makes a difference
    assert float(-np.log(true[real]).mean()) != pytest.approx(every_step, rel=1e-2)
