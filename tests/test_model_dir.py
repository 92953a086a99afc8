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


def test_loaded_weights_are_the_saved_ones(model_copy):
    import keras
    import numpy as np

    saved = keras.saving.load_model(model_copy / WEIGHTS_FILE, compile=False)
    loaded = load_model_dir(model_copy).model.training_model
    assert len(loaded.weights) == len(saved.weights)
    for mine, theirs in zip(loaded.weights, saved.weights, strict=True):
        assert mine.path == theirs.path
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_weights_to_load_start_as_zeros_only_within_the_context():
    import keras
    import numpy as np

    from tandem.models.weights import weights_to_load

    with weights_to_load():
        placeholder = keras.layers.Dense(3)
        placeholder.build((None, 2))
        seeds = keras.random.SeedGenerator(5)  # not a float: made as usual
    assert not np.any(placeholder.kernel.numpy())
    assert np.asarray(seeds.state.numpy()).tolist() == [5, 0]
    usual = keras.layers.Dense(3)
    usual.build((None, 2))
    assert np.any(usual.kernel.numpy())


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


@pytest.mark.parametrize("key, change", [("embedding_dim", 2), ("latent_dim", 2)])
def test_a_config_that_describes_other_weights_is_refused(model_copy, key, change):
    # The layers rebuilt from model.keras keep their own sizes; the config must agree.
    config = json.loads((model_copy / CONFIG_FILE).read_text())
    config["model"][key] += change
    (model_copy / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ModelDirError, match="config.json does not match model.keras"):
        load_model_dir(model_copy)


def test_a_vocabulary_of_another_kind_than_the_config_is_refused(model_copy):
    vocab = json.loads((model_copy / SOURCE_VOCAB_FILE).read_text())
    # Tokens that are words too (no space among them), so only the kind is wrong.
    vocab["tokens"] = ["\u00a4" if token.isspace() else token for token in vocab["tokens"]]
    vocab["kind"] = "word"
    (model_copy / SOURCE_VOCAB_FILE).write_text(json.dumps(vocab))
    with pytest.raises(ModelDirError, match="tokens of kind 'word', but config.json says 'char'"):
        load_model_dir(model_copy)


@pytest.fixture
def held_by_another_process(model_copy):
    """`model_copy`, unfinished, with its training lock held by another process."""
    import subprocess
    import sys

    manifest = json.loads((model_copy / MANIFEST_FILE).read_text())
    (model_copy / MANIFEST_FILE).write_text(json.dumps({**manifest, "complete": False}))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; d = os.open(sys.argv[1], os.O_RDONLY);"
         " fcntl.flock(d, fcntl.LOCK_EX); print('held', flush=True); time.sleep(120)",
         str(model_copy)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "held\n"
        yield model_copy
    finally:
        holder.kill()
        holder.wait()


def test_a_directory_being_trained_is_refused_to_other_trainers_and_readers(
    held_by_another_process, tiny_tsv, capsys
):
    from tandem.cli import main

    model = held_by_another_process
    busy = f"{model}: another tandem process is training in this directory"
    weights = (model / WEIGHTS_FILE).read_bytes()
    for extra in ([], ["--overwrite"], ["--resume"]):
        code = main(["train", str(tiny_tsv), "-o", str(model), "--epochs", "1", "-q", *extra])
        assert (code, capsys.readouterr().err.startswith(f"tandem: error: {busy}")) == (2, True)
    assert main(["average", str(model), "--last", "1"]) == 2
    assert capsys.readouterr().err.startswith(f"tandem: error: {busy}")
    with pytest.raises(ModelDirError, match="a tandem process is training in this directory"):
        load_model_dir(model)
    assert (model / WEIGHTS_FILE).read_bytes() == weights


def test_the_training_lock_ends_with_its_process(model_copy):
    from tandem.files import being_trained, training_lock

    manifest = json.loads((model_copy / MANIFEST_FILE).read_text())
    (model_copy / MANIFEST_FILE).write_text(json.dumps({**manifest, "complete": False}))
    assert not being_trained(model_copy)
    with pytest.raises(ModelDirError, match="training has not finished; continue it"):
        load_model_dir(model_copy)
    with training_lock(model_copy, create=False):
        assert not being_trained(model_copy)  # this process's own lock
        busy = pytest.raises(TandemError, match="another tandem process is training")
        with busy, training_lock(model_copy, create=False):
            pass
        assert not being_trained(model_copy)  # still this process's own
    with training_lock(model_copy, create=False):  # released: taken again
        pass
