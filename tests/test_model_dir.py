"""A model directory rebuilds everything from its files alone, and damage is reported clearly."""

import json
import shutil

import pytest

from tandem.errors import ModelDirError, TandemError
from tandem.model_dir import (
    CONFIG_FILE,
    MANIFEST_FILE,
    REQUIRED_FILES,
    SOURCE_VOCAB_FILE,
    WEIGHTS_FILE,
    load_model_dir,
    prepare_output_dir,
    read_history,
)


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    return shutil.copytree(tiny_model_dir, tmp_path / "copy")


def test_writes_every_file_and_a_manifest(tiny_model_dir):
    for name in (*REQUIRED_FILES, "history.csv"):
        assert (tiny_model_dir / name).is_file(), name
    manifest = json.loads((tiny_model_dir / MANIFEST_FILE).read_text())
    assert manifest["backend"] == "jax"
    assert {"tandem_version", "keras_version", "backend_version", "dims"} <= set(manifest)
    history = read_history(tiny_model_dir / "history.csv")
    assert [row["epoch"] for row in history] == [0, 1, 2]
    assert {"loss", "val_loss", "accuracy", "seconds"} <= set(history[0])


def test_loads_from_the_directory_alone(model_copy):
    loaded = load_model_dir(model_copy)
    assert loaded.config.model.latent_dim == 16
    assert loaded.model.dims.num_encoder_tokens == len(loaded.source_vocab)


@pytest.mark.parametrize("name", REQUIRED_FILES)
def test_missing_file_is_named(model_copy, name):
    (model_copy / name).unlink()
    with pytest.raises(ModelDirError, match=f"missing {name}"):
        load_model_dir(model_copy)


def test_malformed_config_is_reported(model_copy):
    (model_copy / CONFIG_FILE).write_text('{"model": {"latent_dims": 3}}')
    with pytest.raises(ModelDirError, match="unknown key model.latent_dims"):
        load_model_dir(model_copy)


def test_truncated_weights_are_reported(model_copy):
    data = (model_copy / WEIGHTS_FILE).read_bytes()
    (model_copy / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelDirError, match=r"model.keras: not a .keras archive \(truncated"):
        load_model_dir(model_copy)


def test_impossible_dims_in_the_manifest_are_reported(model_copy):
    manifest = json.loads((model_copy / MANIFEST_FILE).read_text())
    manifest["dims"]["max_decoder_seq_length"] = -1
    (model_copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ModelDirError, match="dims.max_decoder_seq_length must be a positive"):
        load_model_dir(model_copy)


def test_foreign_manifest_is_reported(model_copy):
    (model_copy / MANIFEST_FILE).write_text('{"format": "other"}')
    with pytest.raises(ModelDirError, match="not a tandem model manifest"):
        load_model_dir(model_copy)


def test_not_a_directory(tmp_path):
    with pytest.raises(ModelDirError, match="no such model directory"):
        load_model_dir(tmp_path / "nothing")
    (tmp_path / "data.tsv").write_text("Go.\tVa !\n")
    with pytest.raises(ModelDirError, match="data.tsv: is not a directory"):
        load_model_dir(tmp_path / "data.tsv")


def test_output_dir_refuses_a_foreign_non_empty_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(TandemError, match="not empty and holds no tandem model"):
        prepare_output_dir(tmp_path)


def test_a_config_that_leaves_trained_layers_unused_is_refused(model_copy):
    config = json.loads((model_copy / CONFIG_FILE).read_text())
    config["model"]["inputs"] = "one_hot"  # the trained embeddings would be left out
    (model_copy / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ModelDirError, match="layers the config's model does not use: .*embedding"):
        load_model_dir(model_copy)


def test_a_vocabulary_of_another_kind_than_the_config_is_refused(model_copy):
    vocab = json.loads((model_copy / SOURCE_VOCAB_FILE).read_text())
    # Tokens that are words too (no space among them), so only the kind is wrong.
    vocab["tokens"] = ["\u00a4" if token.isspace() else token for token in vocab["tokens"]]
    vocab["kind"] = "word"
    (model_copy / SOURCE_VOCAB_FILE).write_text(json.dumps(vocab))
    with pytest.raises(ModelDirError, match="tokens of kind 'word', but config.json says 'char'"):
        load_model_dir(model_copy)
