"""The three graphs of the seed model agree with each other, before and after save/load."""

import keras
import numpy as np
import pytest

from tandem.config import Config, ModelConfig
from tandem.data.vocabulary import END_ID, START_ID, Vocabulary
from tandem.decoding import compile_stateless, greedy_search
from tandem.model_dir import load_model_dir, save_model_dir
from tandem.models import ModelDims, Seq2Seq

DIMS = ModelDims(
    num_encoder_tokens=9, num_decoder_tokens=11, max_encoder_seq_length=6, max_decoder_seq_length=7
)


def one_hot(ids, width):
    return np.eye(width, dtype="float32")[ids]


def random_batch(seed=0):
    """Sources and framed targets of different lengths, padded with id 0."""
    rng = np.random.default_rng(seed)
    source = np.zeros((4, DIMS.max_encoder_seq_length), "int32")
    decoder = np.zeros((4, DIMS.max_decoder_seq_length), "int32")
    for row, (s_len, t_len) in enumerate([(6, 5), (2, 1), (4, 3), (1, 5)]):
        source[row, :s_len] = rng.integers(4, DIMS.num_encoder_tokens, s_len)
        decoder[row, 0] = START_ID
        decoder[row, 1 : t_len + 1] = rng.integers(4, DIMS.num_decoder_tokens, t_len)
        decoder[row, t_len + 1] = END_ID
    return source, decoder


def step_by_step(model, source, decoder):
    """The example's inference wiring: encoder_model once, decoder_model one token at a time."""
    states = model.encoder_model.predict(one_hot(source, DIMS.num_encoder_tokens), verbose=0)
    outputs = []
    for t in range(decoder.shape[1]):
        token = one_hot(decoder[:, t : t + 1], DIMS.num_decoder_tokens)  # (batch, 1, vocab)
        probs, h, c = model.decoder_model.predict([token] + list(states), verbose=0)
        outputs.append(probs[:, 0])
        states = [h, c]
    return np.stack(outputs, axis=1)  # (batch, steps, vocab)


def teacher_forced(model, source, decoder):
    inputs = [one_hot(source, DIMS.num_encoder_tokens), one_hot(decoder, DIMS.num_decoder_tokens)]
    return model.training_model.predict(inputs, verbose=0)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return Seq2Seq(ModelConfig(latent_dim=12), DIMS)


def test_decoder_model_has_the_examples_signature(model):
    decoder_inputs = model.decoder_model.inputs
    assert [tuple(t.shape) for t in decoder_inputs] == [(None, None, 11), (None, 12), (None, 12)]
    assert [tuple(t.shape) for t in model.decoder_model.outputs] == [
        (None, None, 11),
        (None, 12),
        (None, 12),
    ]
    assert [tuple(t.shape) for t in model.encoder_model.outputs] == [(None, 12), (None, 12)]


def test_the_three_graphs_share_layer_objects_and_weights(model):
    training_ids = {id(v) for v in model.training_model.weights}
    assert {id(v) for v in model.encoder_model.weights} <= training_ids
    assert {id(v) for v in model.decoder_model.weights} <= training_ids
    assert model.training_model.get_layer("decoder_lstm") is model.decoder_model.get_layer(
        "decoder_lstm"
    )


def test_teacher_forcing_equals_stepping_the_decoder_model(model):
    source, decoder = random_batch()
    expected = teacher_forced(model, source, decoder)
    assert expected.shape == (4, DIMS.max_decoder_seq_length, DIMS.num_decoder_tokens)
    np.testing.assert_allclose(step_by_step(model, source, decoder), expected, atol=1e-5)


def test_equivalence_holds_after_save_and_reload(model, tmp_path):
    vocabs = (
        Vocabulary([chr(97 + i) for i in range(5)]),
        Vocabulary([chr(97 + i) for i in range(7)]),
    )
    save_model_dir(tmp_path, model, *vocabs, Config().replace("model", latent_dim=12))
    loaded = load_model_dir(tmp_path).model
    source, decoder = random_batch(seed=1)
    expected = teacher_forced(model, source, decoder)
    np.testing.assert_allclose(teacher_forced(loaded, source, decoder), expected, atol=1e-6)
    np.testing.assert_allclose(step_by_step(loaded, source, decoder), expected, atol=1e-5)
    # The reloaded graphs share weights among themselves too.
    assert loaded.encoder_model.get_layer("encoder_lstm") is loaded.training_model.get_layer(
        "encoder_lstm"
    )


def test_step_contract_matches_decoder_model(model):
    source, decoder = random_batch(seed=2)
    state = model.encode(source)
    log_probs, _ = model.step(decoder[:, 0], state)
    expected = teacher_forced(model, source, decoder)[:, 0]
    np.testing.assert_allclose(np.exp(np.asarray(log_probs)), expected, atol=1e-5)


def python_greedy(model, source, max_length):
    """A plain reference loop over the public encoder_model / decoder_model graphs."""
    states = model.encoder_model.predict(one_hot(source, DIMS.num_encoder_tokens), verbose=0)
    tokens = np.full((len(source),), START_ID)
    finished = np.zeros(len(source), bool)
    output = np.zeros((len(source), max_length), "int32")
    for t in range(max_length):
        token = one_hot(tokens[:, None], DIMS.num_decoder_tokens)
        probs, h, c = model.decoder_model.predict([token] + list(states), verbose=0)
        tokens = np.where(finished, 0, probs[:, 0].argmax(-1))
        output[:, t] = tokens
        finished |= tokens == END_ID
        states = [h, c]
    return output


@pytest.mark.parametrize("compiled", [False, True])
def test_batched_greedy_equals_the_reference_loop(model, compiled):
    source, _ = random_batch(seed=3)
    max_length = DIMS.max_decoder_seq_length

    def decode(source_ids):
        return greedy_search(model.step, model.encode(source_ids), len(source), max_length)

    if compiled:
        decode = compile_stateless(decode, model.variables)
    np.testing.assert_array_equal(
        np.asarray(decode(source)), python_greedy(model, source, max_length)
    )


def test_reference_loop_case_is_not_trivial(model):
    # Guard for the test above: sequences must differ and run for more than one step.
    output = python_greedy(model, random_batch(seed=3)[0], DIMS.max_decoder_seq_length)
    assert (output[:, 0] != END_ID).any()
    assert len({tuple(row) for row in output}) > 1


def test_encode_equals_encoder_model(model):
    source, _ = random_batch(seed=4)
    expected = model.encoder_model.predict(one_hot(source, DIMS.num_encoder_tokens), verbose=0)
    for got, want in zip(model.encode(source), expected, strict=True):
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)
