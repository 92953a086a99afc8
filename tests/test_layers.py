"""KerasHub's layer discipline: config round trip and .keras save/load for every custom layer."""

import keras
import numpy as np
import pytest

from tandem.models.layers import (
    ATTENTION_SCORES,
    Attention,
    GateGlorotUniform,
    InitialFeed,
    InputFeedingDecoder,
    OneHot,
    PaddingMask,
)
from tandem.models.transformer_layers import (
    EmptyCache,
    MemoryProjection,
    Positions,
    TransformerDecoder,
    TransformerEncoder,
    sinusoids,
)


def run_layer_checks(layer, inputs, tmp_path, call=None):
    """get_config -> from_config gives the same layer; a model holding it survives .keras."""
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    for name, value in layer.get_config().items():
        if name not in ("name", "trainable", "dtype"):
            kept = getattr(layer, name)  # every argument kept as an attribute
            if isinstance(value, dict):  # an initializer
                kept = keras.saving.serialize_keras_object(kept)
            assert kept == value

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

    gates = 4 if cell == "lstm" else 3
    layer = InputFeedingDecoder(
        8, cell, num_layers=2, score="bahdanau", recurrent_initializer=GateGlorotUniform(gates)
    )
    outputs, weights, *new_states = run_layer_checks(layer, inputs, tmp_path, call)
    assert outputs.shape == (2, 3, 8) and weights.shape == (2, 3, 4)
    assert len(new_states) == 2 * states + 1
    # The last state is the last step's attentional vector, fed to the next step.
    np.testing.assert_allclose(new_states[-1], outputs[:, -1], atol=1e-6)


@pytest.mark.parametrize("gates", [4, 3])
def test_gate_glorot_uniform_draws_each_gate_as_its_own_matrix(gates):
    initializer = GateGlorotUniform(gates, seed=3)
    kernel = np.asarray(initializer((300, gates * 200)))
    limit = np.sqrt(6 / (300 + 200))  # Keras's Glorot would use 300 + gates * 200
    assert np.abs(kernel).max() <= limit
    for block in np.split(kernel, gates, axis=1):  # each gate spans its whole range
        assert np.abs(block).max() > 0.99 * limit
        assert abs(block.std() - limit / np.sqrt(3)) < 0.01 * limit
    np.testing.assert_array_equal(kernel, np.asarray(initializer((300, gates * 200))))
    clone = keras.initializers.deserialize(keras.initializers.serialize(initializer))
    np.testing.assert_array_equal(kernel, np.asarray(clone((300, gates * 200))))


def test_an_input_feeding_decoder_saved_before_its_initializers_loads():
    saved = InputFeedingDecoder(8, "lstm").get_config()
    older = {key: value for key, value in saved.items() if not key.endswith("initializer")}
    layer = InputFeedingDecoder.from_config(older)
    assert type(layer.kernel_initializer).__name__ == "GlorotUniform"  # Keras's defaults
    assert type(layer.recurrent_initializer).__name__ == "Orthogonal"
    assert layer.get_config() == saved


def test_unseeded_gate_glorot_copies_draw_differently():
    keras.utils.set_random_seed(5)
    initializer = GateGlorotUniform()
    clone = keras.initializers.deserialize(keras.initializers.serialize(initializer))
    assert not np.allclose(initializer((4, 8)), clone((4, 8)))
    keras.utils.set_random_seed(5)  # and the global seed repeats them
    np.testing.assert_array_equal(initializer((4, 8)), GateGlorotUniform()((4, 8)))


def transformer_inputs(seed=2, t=3, s=4, units=8):
    rng = np.random.default_rng(seed)
    embedded = rng.standard_normal((2, t, units)).astype("float32")
    cross = [rng.standard_normal((2, s, units)).astype("float32") for _ in range(4)]
    source_mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)[:, :s]
    return embedded, cross, source_mask


def test_positions_scale_and_offset(tmp_path):
    embeddings = np.ones((2, 3, 6), "float32")
    got = run_layer_checks(Positions(6), [embeddings], tmp_path)
    expected = np.sqrt(6.0) + np.asarray(sinusoids(np.arange(3), 6))
    np.testing.assert_allclose(got, np.broadcast_to(expected, (2, 3, 6)), atol=1e-6)
    # With an offset, row i's steps are positions offset[i], offset[i] + 1, ...
    shifted = np.asarray(Positions(6)(embeddings, np.array([0, 5], "int32")))
    np.testing.assert_allclose(shifted[0], expected, atol=1e-6)
    later = np.sqrt(6.0) + np.asarray(sinusoids(np.arange(5, 8), 6))
    np.testing.assert_allclose(shifted[1], later, atol=1e-6)


def test_transformer_encoder_ignores_padding(tmp_path):
    embedded, _, source_mask = transformer_inputs(t=4)
    layer = TransformerEncoder(8, heads=2, ff_dim=12, num_layers=2, dropout=0.1)
    memory = run_layer_checks(layer, [embedded, source_mask], tmp_path)
    assert memory.shape == (2, 4, 8)
    # What stands at padded steps does not change the text steps' outputs.
    changed = embedded.copy()
    changed[0, 2:] = 7.0
    again = np.asarray(layer(changed, source_mask))
    np.testing.assert_allclose(again[0, :2], memory[0, :2], atol=1e-5)
    assert not np.allclose(again[0, 2:], memory[0, 2:])


def test_memory_projection_and_empty_cache(tmp_path):
    memory = np.random.default_rng(3).standard_normal((2, 4, 8)).astype("float32")
    keys_values = run_layer_checks(MemoryProjection(8, num_layers=2), [memory], tmp_path)
    assert [x.shape for x in keys_values] == [(2, 4, 8)] * 4
    *cache, position = run_layer_checks(EmptyCache(8, num_layers=2, length=5), [memory], tmp_path)
    assert [x.shape for x in cache] == [(2, 5, 8)] * 4 and not any(x.any() for x in cache)
    np.testing.assert_array_equal(position, [0, 0])


def test_transformer_decoder_teacher_forced_and_cached(tmp_path):
    embedded, cross, source_mask = transformer_inputs()
    layer = TransformerDecoder(8, heads=2, ff_dim=12, num_layers=2, dropout=0.1)

    def call(layer, symbolic):
        return layer(symbolic[0], symbolic[1:5], symbolic[5])

    outputs, weights, *cache, position = run_layer_checks(
        layer, [embedded, *cross, source_mask], tmp_path, call
    )
    assert outputs.shape == (2, 3, 8) and weights.shape == (2, 3, 4)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert (weights[0, :, 2:] == 0).all()  # padding gets no attention
    assert [x.shape for x in cache] == [(2, 3, 8)] * 4 and list(position) == [3, 3]

    # The same steps fed one at a time through a cache of 5 give the same outputs, and
    # the cache ends holding the teacher-forced keys and values.
    state = [np.zeros((2, 5, 8), "float32") for _ in range(4)]
    at = np.zeros((2,), "int32")
    for t in range(3):
        step, step_weights, *state, at = layer(
            embedded[:, t : t + 1], cross, source_mask, state, at
        )
        np.testing.assert_allclose(np.asarray(step)[:, 0], outputs[:, t], atol=1e-5)
        np.testing.assert_allclose(np.asarray(step_weights)[:, 0], weights[:, t], atol=1e-5)
    np.testing.assert_array_equal(np.asarray(at), [3, 3])
    for got, want in zip(state, cache, strict=True):
        np.testing.assert_allclose(np.asarray(got)[:, :3], want, atol=1e-5)
        assert not np.asarray(got)[:, 3:].any()  # rows not yet written stay empty
