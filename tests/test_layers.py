"""KerasHub's layer discipline: config round trip and .keras save/load for every custom layer."""

import keras
import numpy as np
import pytest

from tandem.models.layers import (
    ATTENTION_SCORES,
    Attention,
    InitialFeed,
    InputFeedingDecoder,
    OneHot,
    PaddingMask,
)


def run_layer_checks(layer, inputs, tmp_path, call=None):
    """get_config -> from_config gives the same layer; a model holding it survives .keras."""
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    for name, value in layer.get_config().items():
        if name not in ("name", "trainable", "dtype"):
            assert getattr(layer, name) == value  # every argument kept as an attribute

    symbolic = [keras.Input(shape=x.shape[1:], dtype=x.dtype) for x in inputs]
    outputs = layer(*symbolic) if call is None else call(layer, symbolic)
    model = keras.Model(symbolic, outputs)
    expected = model.predict(inputs, verbose=0)
    path = tmp_path / "layer.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    got = reloaded.predict(inputs, verbose=0)
    for a, b in zip(keras.tree.flatten(got), keras.tree.flatten(expected), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    return expected


def test_padding_mask_on_ids(tmp_path):
    mask = run_layer_checks(PaddingMask(), [np.array([[5, 4, 0], [6, 0, 0]], "int32")], tmp_path)
    np.testing.assert_array_equal(mask, [[True, True, False], [True, False, False]])


def test_padding_mask_on_one_hots(tmp_path):
    one_hot = np.eye(4, dtype="float32")[np.array([[2, 0], [0, 0]])]
    mask = run_layer_checks(PaddingMask(one_hot=True), [one_hot], tmp_path)
    np.testing.assert_array_equal(mask, [[True, False], [False, False]])


def test_one_hot_matches_the_host_expansion(tmp_path):
    ids = np.array([[2, 3, 0], [1, 0, 0]], "int32")
    vectors = run_layer_checks(OneHot(5), [ids], tmp_path)
    np.testing.assert_array_equal(vectors, np.eye(5, dtype="float32")[ids])


@pytest.mark.parametrize("score", ATTENTION_SCORES)
def test_attention(score, tmp_path):
    rng = np.random.default_rng(0)
    decoder_outputs = rng.standard_normal((2, 3, 8)).astype("float32")
    memory = rng.standard_normal((2, 5, 8)).astype("float32")
    source_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    attentional, weights = run_layer_checks(
        Attention(8, score), [decoder_outputs, memory, source_mask], tmp_path
    )
    assert attentional.shape == (2, 3, 8) and weights.shape == (2, 3, 5)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert (weights[0, :, 3:] < 1e-6).all()


def test_attention_rejects_unknown_scores():
    with pytest.raises(ValueError, match="attention score must be one of"):
        Attention(8, "cosine")


def test_initial_feed(tmp_path):
    zeros = run_layer_checks(InitialFeed(4), [np.ones((3, 5, 4), "float32")], tmp_path)
    np.testing.assert_array_equal(zeros, np.zeros((3, 4)))


@pytest.mark.parametrize("cell, states", [("lstm", 2), ("gru", 1)])
def test_input_feeding_decoder(cell, states, tmp_path):
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((2, 3, 5)).astype("float32")]  # embedded targets
    inputs += [rng.standard_normal((2, 8)).astype("float32") for _ in range(2 * states + 1)]
    inputs += [rng.standard_normal((2, 4, 8)).astype("float32"), np.ones((2, 4), bool)]

    def call(layer, symbolic):
        return layer(symbolic[0], symbolic[1:-2], symbolic[-2], symbolic[-1])

    layer = InputFeedingDecoder(8, cell, num_layers=2, score="bahdanau")
    outputs, weights, *new_states = run_layer_checks(layer, inputs, tmp_path, call)
    assert outputs.shape == (2, 3, 8) and weights.shape == (2, 3, 4)
    assert len(new_states) == 2 * states + 1
    # The last state is the last step's attentional vector, fed to the next step.
    np.testing.assert_allclose(new_states[-1], outputs[:, -1], atol=1e-6)
