import dataclasses
import json

import pytest

from tandem.config import (
    Config,
    ConfigError,
    DataConfig,
    DecodeConfig,
    ModelConfig,
    TrainConfig,
)


def test_defaults_are_the_examples_settings():
    config = Config()
    assert config.model.latent_dim == 256
    assert config.model.cell == "lstm"
    assert config.train.optimizer == "rmsprop"
    assert config.train.batch_size == 64
    assert config.train.epochs == 100
    assert config.train.validation_split == 0.2
    assert config.train.patience is None


def test_the_seed_keeps_keras_initialisation_and_new_models_start_from_xavier(tmp_path):
    assert ModelConfig.seed().init == "keras"  # the example's model exactly
    assert ModelConfig().init == "xavier"
    # A config.json written before the option reads as the default: its weights are loaded,
    # so the initialisation never runs.
    assert Config.from_dict({"model": {"latent_dim": 8}}).model.init == "xavier"
    with pytest.raises(ConfigError, match="init"):
        ModelConfig(init="orthogonal")
    with pytest.raises(ConfigError, match="init.*applies to the rnn family only"):
        ModelConfig(family="transformer", latent_dim=8, embedding_dim=8, init="keras")


def test_round_trip_through_json(tmp_path):
    config = Config().replace("train", epochs=7).replace("data", max_samples=10)
    config.save(tmp_path / "config.json")
    assert Config.load(tmp_path / "config.json") == config


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().train.epochs = 3


def test_unknown_key_names_the_key_and_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown key train\.epoch; valid keys: epochs"):
        Config.from_dict({"train": {"epoch": 3}})


def test_unknown_section_is_an_error():
    with pytest.raises(ConfigError, match="unknown config section 'trainer'"):
        Config.from_dict({"trainer": {}})


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ModelConfig(latent_dim=0), "model.latent_dim must be a positive integer"),
        (lambda: ModelConfig(cell="rnn"), "model.cell must be one of lstm"),
        (lambda: ModelConfig(output_dropout=1.0), "model.output_dropout must be in"),
        (lambda: ModelConfig(dropout="0.3"), "model.dropout must be in"),
        (
            lambda: ModelConfig(inputs="one_hot", embedding_dropout=0.1),
            "embedding_dropout needs inputs: embedding",
        ),
        (lambda: ModelConfig(family="cnn"), "model.family must be one of rnn, transformer"),
        (
            lambda: ModelConfig(family="transformer", bidirectional=True),
            "model.bidirectional = True applies to the rnn family only",
        ),
        (
            lambda: ModelConfig(family="transformer", attention="dot"),
            "model.attention = 'dot' applies to the rnn family only",
        ),
        (
            lambda: ModelConfig(family="transformer", mask_padding=False),
            "model.mask_padding = False applies to the rnn family only",
        ),
        (
            lambda: ModelConfig(family="transformer", cell="gru"),
            "model.cell = 'gru' applies to the rnn family only",
        ),
        (
            lambda: ModelConfig(family="transformer", latent_dim=64, embedding_dim=32),
            "embedding_dim must equal latent_dim",
        ),
        (
            lambda: ModelConfig(family="transformer", latent_dim=12, embedding_dim=12, heads=4),
            r"latent_dim \(12\) must split into 4 heads of an even size",
        ),
        (lambda: ModelConfig(heads=0), "model.heads must be a positive integer"),
        (lambda: TrainConfig(optimizer="adagrad"), "train.optimizer must be one of"),
        (lambda: TrainConfig(warmup_steps=0), "train.warmup_steps must be a positive integer"),
        (lambda: TrainConfig(adam_beta_2=1.0), r"train.adam_beta_2 must be in \(0, 1\)"),
        (lambda: TrainConfig(validation_split=1.0), "validation_split must be in"),
        (lambda: TrainConfig(batch_size=True), "batch_size must be a positive integer"),
        (lambda: DataConfig(max_samples=-1), "data.max_samples must be a positive integer"),
        (lambda: DataConfig(source_tokens="bpe"), "data.source_tokens must be one of"),
        (lambda: DataConfig(skip_bad_lines="false"), "data.skip_bad_lines must be true or false"),
        (lambda: DataConfig(skip_bad_lines=0), "data.skip_bad_lines must be true or false"),
        (lambda: ModelConfig(latent_dim=2**16 + 1), "model.latent_dim must be at most 65,536"),
        (lambda: ModelConfig(ff_dim=10**11), "model.ff_dim must be at most 65,536"),
        (lambda: DataConfig(spm_vocab_size=2**31), "data.spm_vocab_size must be at most 1,000,000"),
        (
            lambda: Config(model={"latent_dim": 8}),
            "section 'model' must be a ModelConfig, got dict",
        ),
        (lambda: Config().replace("decode", beam_size=3), "unknown config section 'decode'"),
        (lambda: Config.from_dict(None), "config must be a JSON object, got null"),
        (lambda: DecodeConfig(alpha=float("nan")), r"decode.alpha must be a number in \[0, 10\)"),
        (lambda: DecodeConfig(alpha=-0.5), r"decode.alpha must be a number in \[0, 10\)"),
        (lambda: DecodeConfig(alpha=1000), r"decode.alpha must be a number in \[0, 10\), got 1000"),
        (
            lambda: DecodeConfig(temperature=float("inf")),
            "decode.temperature must be a finite number > 0",
        ),
        (lambda: DecodeConfig(seed=2**32), r"decode.seed must be an integer in \[0, 2\*\*32 - 1\]"),
        # Another strategy's settings would be silently unused.
        (
            lambda: DecodeConfig(beam_size=10, alpha=0.6),
            "decode.beam_size, decode.alpha: for the beam strategy only, and the strategy is "
            "greedy",
        ),
        (
            lambda: DecodeConfig(strategy="beam", seed=3),
            "decode.seed: for the sample strategy only, and the strategy is beam",
        ),
        (
            lambda: DecodeConfig(strategy="sample", alpha=1.0),
            "decode.alpha: for the beam strategy only",
        ),
    ],
)
def test_invalid_values_are_named(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_replace_ignores_none_and_validates():
    config = Config().replace("train", epochs=None, batch_size=8)
    assert config.train.epochs == 100 and config.train.batch_size == 8
    with pytest.raises(ConfigError):
        Config().replace("train", epochs=0)


def test_malformed_file_is_a_clear_error(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="config.json: cannot read config"):
        Config.load(path)


def test_a_file_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"train": {"epochs": 3}}).encode())
    assert Config.load(path).train.epochs == 3


def test_a_key_given_twice_is_an_error_not_a_silent_choice(tmp_path):
    # json.loads keeps the last: the first model section, embedding_dim included, would vanish.
    path = tmp_path / "config.json"
    path.write_text('{"model": {"latent_dim": 8, "embedding_dim": 8}, "model": {"latent_dim": 9}}')
    with pytest.raises(ConfigError, match=r"config.json: the key 'model' is given twice"):
        Config.load(path)
    path.write_text('{"train": {"epochs": 3, "epochs": 4}}')
    with pytest.raises(ConfigError, match="the key 'epochs' is given twice"):
        Config.load(path)


def test_decode_settings_in_use_are_those_of_the_strategy():
    assert DecodeConfig().in_use() == {
        "strategy": "greedy", "batch_size": 64, "max_length": None, "overlong": "truncate"
    }  # fmt: skip
    beam = DecodeConfig(strategy="beam", beam_size=4, nbest=2, alpha=0.6).in_use()
    assert (beam["beam_size"], beam["nbest"], beam["alpha"]) == (4, 2, 0.6) and "seed" not in beam
    drawn = DecodeConfig(strategy="sample", top_k=3, seed=7).in_use()
    assert (drawn["top_k"], drawn["seed"], drawn["temperature"]) == (3, 7, 1.0)
    assert "beam_size" not in drawn


def test_numpy_numbers_are_taken_as_pythons_own(tmp_path):
    import numpy as np

    decode = DecodeConfig(strategy="beam", beam_size=np.int32(3), alpha=np.float32(0.5))
    assert decode.beam_size == 3 and type(decode.beam_size) is int
    assert type(decode.alpha) is float and decode.alpha == 0.5
    config = Config().replace("train", batch_size=np.int64(16), learning_rate=np.float64(0.01))
    config.save(tmp_path / "config.json")  # json cannot write numpy's numbers
    assert Config.load(tmp_path / "config.json").train.batch_size == 16
    with pytest.raises(ConfigError, match="decode.beam_size must be a positive integer"):
        DecodeConfig(strategy="beam", beam_size=np.float64(3.0))  # a float stays a float


def test_an_integer_where_a_float_is_meant_is_a_float(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"train": {"learning_rate": 1, "label_smoothing": 0}}')
    train = Config.load(path).train
    assert type(train.learning_rate) is float and train.learning_rate == 1.0  # Keras wants it
    assert type(train.label_smoothing) is float
    path.write_text('{"train": {"learning_rate": 1' + "0" * 400 + "}}")
    with pytest.raises(ConfigError, match="train.learning_rate must be a finite number > 0"):
        Config.load(path)
