"""Every model family's three graphs agree with each other, before and after save/load."""

import dataclasses

import keras
import numpy as np
import pytest

from tandem.config import FAMILIES as FAMILY_NAMES
from tandem.config import Config, ModelConfig
from tandem.data.vocabulary import END_ID, PAD_ID, START_ID, Vocabulary
from tandem.decoding import compile_stateless, greedy_search
from tandem.model_dir import load_model_dir, save_model_dir
from tandem.models import (
    FAMILY_CLASSES,
    RNN,
    EncoderDecoder,
    ModelDims,
    Transformer,
    build_model,
    model_class,
)

DIMS = ModelDims(
    num_encoder_tokens=9, num_decoder_tokens=11, max_encoder_seq_length=6, max_decoder_seq_length=7
)
LENGTHS = [(6, 5), (2, 1), (4, 3), (1, 5)]  # (source, target) tokens per row

FAMILIES = {
    "seed": ModelConfig.seed(latent_dim=12),
    "embedding": ModelConfig(latent_dim=12, embedding_dim=6),
    "one_hot_masked": ModelConfig(latent_dim=12, inputs="one_hot"),
    "gru": ModelConfig(latent_dim=12, embedding_dim=6, cell="gru"),
    "deep": ModelConfig(latent_dim=12, embedding_dim=6, num_layers=2, dropout=0.3),
    "bidirectional": ModelConfig(latent_dim=12, embedding_dim=6, bidirectional=True),
    "dot": ModelConfig(latent_dim=12, embedding_dim=6, attention="dot"),
    "general": ModelConfig(
        latent_dim=12,
        embedding_dim=6,
        attention="general",
        num_layers=2,
        embedding_dropout=0.2,
        output_dropout=0.3,
    ),
    "bahdanau_bigru": ModelConfig(
        latent_dim=12, embedding_dim=6, attention="bahdanau", cell="gru", bidirectional=True
    ),
    "seed_attention": ModelConfig.seed(latent_dim=12, attention="general"),
    "input_feeding": ModelConfig(
        latent_dim=12, embedding_dim=6, attention="dot", input_feeding=True
    ),
    "input_feeding_deep_bigru": ModelConfig(
        latent_dim=12,
        embedding_dim=6,
        attention="bahdanau",
        input_feeding=True,
        cell="gru",
        num_layers=2,
        dropout=0.2,
        output_dropout=0.2,
        bidirectional=True,
    ),
    "transformer": ModelConfig(
        family="transformer",
        latent_dim=12,
        embedding_dim=12,
        heads=3,
        ff_dim=16,
        num_layers=2,
        dropout=0.2,
        embedding_dropout=0.1,
        output_dropout=0.1,
    ),
}


def graph_inputs(model, ids, width):
    """Ids -> what the graphs take: one-hot vectors (seed inputs) or the ids themselves."""
    return np.eye(width, dtype="float32")[ids] if model.one_hot else ids


def random_batch(seed=0):
    """Sources and framed targets of different lengths, padded with id 0."""
    rng = np.random.default_rng(seed)
    source = np.zeros((4, DIMS.max_encoder_seq_length), "int32")
    decoder = np.zeros((4, DIMS.max_decoder_seq_length), "int32")
    for row, (s_len, t_len) in enumerate(LENGTHS):
        source[row, :s_len] = rng.integers(4, DIMS.num_encoder_tokens, s_len)
        decoder[row, 0] = START_ID
        decoder[row, 1 : t_len + 1] = rng.integers(4, DIMS.num_decoder_tokens, t_len)
        decoder[row, t_len + 1] = END_ID
    return source, decoder


def real_steps():
    """(batch, steps) True where the decoder input is text (start .. end), not padding."""
    mask = np.zeros((4, DIMS.max_decoder_seq_length), bool)
    for row, (_, t_len) in enumerate(LENGTHS):
        mask[row, : t_len + 2] = True
    return mask


def step_by_step(model, source, decoder):
    """The example's inference wiring: encoder_model once, decoder_model one token at a time."""
    states = model.encoder_model.predict(
        graph_inputs(model, source, DIMS.num_encoder_tokens), verbose=0
    )
    states = list(states) if isinstance(states, list) else [states]
    outputs = []
    for t in range(decoder.shape[1]):
        token = graph_inputs(model, decoder[:, t : t + 1], DIMS.num_decoder_tokens)
        results = model.decoder_model.predict_on_batch([token] + states)
        outputs.append(results[0][:, 0])
        states = list(results[1 : 1 + len(states)])
    return np.stack(outputs, axis=1)  # (batch, steps, vocab)


def teacher_forced(model, source, decoder):
    inputs = [
        graph_inputs(model, source, DIMS.num_encoder_tokens),
        graph_inputs(model, decoder, DIMS.num_decoder_tokens),
    ]
    return model.training_model.predict(inputs, verbose=0)


def build(config):
    keras.utils.set_random_seed(0)
    return build_model(config, DIMS)


@pytest.fixture(scope="module")
def model():
    return build(FAMILIES["seed"])


@pytest.mark.parametrize("name", FAMILIES)
def test_the_factory_builds_the_family_the_config_names(name):
    family = model_class(FAMILIES[name])
    assert family is (Transformer if FAMILIES[name].family == "transformer" else RNN)
    assert issubclass(family, EncoderDecoder)
    assert set(FAMILY_CLASSES) == set(FAMILY_NAMES)


def test_seed_decoder_model_has_the_examples_signature(model):
    assert [tuple(t.shape) for t in model.decoder_model.inputs] == [
        (None, None, 11),
        (None, 12),
        (None, 12),
    ]
    assert [tuple(t.shape) for t in model.decoder_model.outputs] == [
        (None, None, 11),
        (None, 12),
        (None, 12),
    ]
    assert [tuple(t.shape) for t in model.encoder_model.outputs] == [(None, 12), (None, 12)]
    assert [layer.name for layer in model.training_model.layers if layer.weights] == [
        "encoder_lstm",
        "decoder_lstm",
        "decoder_dense",
    ]


def test_the_three_graphs_share_layer_objects_and_weights(model):
    training_ids = {id(v) for v in model.training_model.weights}
    assert {id(v) for v in model.encoder_model.weights} <= training_ids
    assert {id(v) for v in model.decoder_model.weights} <= training_ids
    assert model.training_model.get_layer("decoder_lstm") is model.decoder_model.get_layer(
        "decoder_lstm"
    )


@pytest.mark.parametrize("family", ["seed", "one_hot_masked", "embedding"])
def test_fit_model_is_the_training_model_on_id_batches(family):
    """What `fit` trains takes ids (one-hot models expand them in the graph), holds the
    training model's weights, and gives its loss, padding masked or not."""
    model = build(FAMILIES[family])
    assert {id(v) for v in model.fit_model.weights} == {id(v) for v in model.training_model.weights}
    source, decoder = random_batch()
    targets = np.concatenate([decoder[:, 1:], np.zeros((4, 1), "int32")], axis=1)
    weights = real_steps().astype("float32")
    losses = []
    for graph, inputs in [
        (model.fit_model, [source, decoder]),
        (model.training_model, [graph_inputs(model, source, DIMS.num_encoder_tokens),
                                graph_inputs(model, decoder, DIMS.num_decoder_tokens)]),
    ]:  # fmt: skip
        graph.compile(loss="sparse_categorical_crossentropy")
        losses.append(graph.evaluate(inputs, targets, sample_weight=weights, verbose=0))
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)


@pytest.mark.parametrize(
    "changes",
    [
        {"embedding_dropout": 0.5},
        {"output_dropout": 0.5},
        {"dropout": 0.5, "num_layers": 2},
        {"family": "transformer", "embedding_dim": 12, "embedding_dropout": 0.5},
        {"family": "transformer", "embedding_dim": 12, "output_dropout": 0.5},
        {"family": "transformer", "embedding_dim": 12, "dropout": 0.5},
    ],
)
def test_each_dropout_acts_in_training_only(changes):
    """Every dropout rate reaches the training graph: two training-mode calls differ, two
    inference calls agree, and a rate of 0 makes training mode deterministic too."""
    source, decoder = random_batch()

    def calls(config, training):
        model = build(config)
        return [np.asarray(model.training_model([source, decoder], training=training))
                for _ in range(2)]  # fmt: skip

    base = {"latent_dim": 12, "embedding_dim": 6, "attention": "general"}
    if changes.get("family") == "transformer":
        base = {"latent_dim": 12, "heads": 2}
    config = ModelConfig(**{**base, **changes})
    first, second = calls(config, training=True)
    assert not np.allclose(first, second)
    first, second = calls(config, training=False)
    np.testing.assert_array_equal(first, second)
    zeros = {name: 0.0 for name in changes if "dropout" in name}
    first, second = calls(dataclasses.replace(config, **zeros), training=True)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("family", FAMILIES)
def test_teacher_forcing_equals_stepping_the_decoder_model(family, tmp_path):
    model = build(FAMILIES[family])
    source, decoder = random_batch()
    expected = teacher_forced(model, source, decoder)
    assert expected.shape == (4, DIMS.max_decoder_seq_length, DIMS.num_decoder_tokens)
    # Unmasked models agree at every step; masked ones on the real (unpadded) steps.
    steps = real_steps() if model.config.mask_padding else np.ones_like(real_steps())
    np.testing.assert_allclose(
        step_by_step(model, source, decoder)[steps], expected[steps], atol=1e-5
    )

    # The same holds after a save and reload from the model directory alone.
    vocabs = (
        Vocabulary([chr(97 + i) for i in range(5)]),
        Vocabulary([chr(97 + i) for i in range(7)]),
    )
    save_model_dir(tmp_path, model, *vocabs, Config().replace("model", **vars(model.config)))
    loaded = load_model_dir(tmp_path).model
    np.testing.assert_allclose(teacher_forced(loaded, source, decoder), expected, atol=1e-6)
    np.testing.assert_allclose(
        step_by_step(loaded, source, decoder)[steps], expected[steps], atol=1e-5
    )
    assert loaded.encoder_model.get_layer(loaded.encoder_model.layers[-1].name) is not None


@pytest.mark.parametrize("family", FAMILIES)
def test_step_contract_matches_the_graphs(family):
    model = build(FAMILIES[family])
    source, decoder = random_batch(seed=2)
    expected = teacher_forced(model, source, decoder)
    state = model.encode(source)
    for t in range(3):
        log_probs, state = model.step(decoder[:, t], state)
        np.testing.assert_allclose(np.exp(np.asarray(log_probs)), expected[:, t], atol=1e-5)
    if "attention" in state:
        weights = np.asarray(state["attention"])  # (batch, source_steps)
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
        assert (weights[source == 0] == 0).all()  # padding gets no attention


def test_encode_equals_encoder_model(model):
    source, _ = random_batch(seed=4)
    expected = model.encoder_model.predict(np.eye(9, dtype="float32")[source], verbose=0)
    [state] = model.encode(source)["layers"]
    for got, want in zip(state, expected, strict=True):
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)


def python_greedy(model, source, max_length):
    """A plain reference loop over the public encoder_model / decoder_model graphs."""
    states = list(
        model.encoder_model.predict(graph_inputs(model, source, DIMS.num_encoder_tokens), verbose=0)
    )
    tokens = np.full((len(source),), START_ID)
    finished = np.zeros(len(source), bool)
    output = np.zeros((len(source), max_length), "int32")
    for t in range(max_length):
        token = graph_inputs(model, tokens[:, None], DIMS.num_decoder_tokens)
        results = model.decoder_model.predict_on_batch([token] + states)
        log_probs = results[0][:, 0].copy()
        log_probs[:, [PAD_ID, START_ID]] = -np.inf  # never output: no target holds them
        tokens = np.where(finished, 0, log_probs.argmax(-1))
        output[:, t] = tokens
        finished |= tokens == END_ID
        states = list(results[1 : 1 + len(states)])
    return output


@pytest.mark.parametrize("family", ["seed", "bahdanau_bigru", "input_feeding", "transformer"])
@pytest.mark.parametrize("compiled", [False, True])
def test_batched_greedy_equals_the_reference_loop(family, compiled):
    model = build(FAMILIES[family])
    source, _ = random_batch(seed=3)
    max_length = DIMS.max_decoder_seq_length

    def decode(source_ids):
        return greedy_search(model.step, model.encode(source_ids), len(source), max_length)[0]

    if compiled:
        decode = compile_stateless(decode, model.variables)
    expected = python_greedy(model, source, max_length)
    np.testing.assert_array_equal(np.asarray(decode(source)), expected)
    # Guard: the case is not trivial (sequences differ and run past the first step).
    assert (expected[:, 0] != END_ID).any() and len({tuple(r) for r in expected}) > 1
