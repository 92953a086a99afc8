"""Tests for `tandem export` and `tandem.runtime`: the exported graphs decode as the model does,
the runtime needs neither Keras nor JAX, and every refusal is one line that leaves nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from keras import ops

from tandem.cli import main
from tandem.data.vocabulary import PAD_ID, START_ID
from tandem.decoding import beam_search, greedy_search
from tandem.runtime import search

pytest.importorskip("jax2onnx", reason="the export extra is not installed (pip install -e .[dev])")

from tandem.export import ExportError, export_model  # noqa: E402
from tandem.runtime import OnnxTranslator  # noqa: E402
from tandem.translator import Translator  # noqa: E402

# "Fire! Fire!" is longer than the tiny models' sources: both sides truncate it, and warn.
pytestmark = pytest.mark.filterwarnings("ignore::tandem.errors.OverlongSourceWarning")
VOCAB = 9
TEXTS = ["Go.", "Hi.", "Help!", "I see.", "Wait!", "", "Fire! Fire!", "zz"]
# The families beyond the conftest's models (an LSTM with embeddings and masking, and a
# Transformer): the classic example's one-hot LSTM that reads padding, depth, GRU, a
# bidirectional encoder, attention with and without input feeding.
FAMILIES = {
    "seed": dict(inputs="one_hot", mask_padding=False),  # the classic example's model
    "bidirectional_attention": dict(
        inputs="embedding",
        mask_padding=True,
        num_layers=2,
        bidirectional=True,
        attention="general",
        embedding_dim=8,
    ),
    "gru_input_feeding": dict(
        cell="gru", inputs="embedding", attention="bahdanau", input_feeding=True, embedding_dim=8
    ),
}


# --- the searches, against tandem.decoding's on the same fake step --------------------------


def trigram(seed: int):
    """A step whose log-probs depend on the last two tokens (state: the one before the last),
    as a numpy function and as a keras.ops one."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=1.5, size=(VOCAB, VOCAB, VOCAB))
    logits[..., [PAD_ID, START_ID]] = -30.0
    table = (logits - np.log(np.exp(logits).sum(-1, keepdims=True))).astype("float32")

    def numpy_step(tokens, state):
        return table[state["previous"], tokens], {"previous": tokens}

    def keras_step(tokens, state):
        rows = state["previous"] * VOCAB + tokens
        log_probs = ops.take(table.reshape(VOCAB * VOCAB, VOCAB), rows, axis=0)
        return log_probs, {"previous": tokens}

    return numpy_step, keras_step


@pytest.mark.parametrize(
    ("beam_size", "alpha", "nbest"), [(1, 0.0, 1), (3, 0.0, 2), (4, 0.6, 3), (5, 1.5, 5)]
)
@pytest.mark.parametrize("seed", [0, 1])
def test_runtime_beam_is_tandems_beam(seed, beam_size, alpha, nbest):
    numpy_step, keras_step = trigram(seed)
    start = np.full((4,), START_ID, dtype=np.int32)
    expected = beam_search(keras_step, {"previous": start}, 4, 9, beam_size, alpha, nbest)
    got = search.beam_search(numpy_step, {"previous": start}, 4, 9, beam_size, alpha, nbest)
    np.testing.assert_array_equal(got[0], ops.convert_to_numpy(expected[0]))
    np.testing.assert_allclose(got[1], ops.convert_to_numpy(expected[1]), rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_runtime_greedy_is_tandems_greedy(seed):
    numpy_step, keras_step = trigram(seed)
    start = np.full((5,), START_ID, dtype=np.int32)
    expected = greedy_search(keras_step, {"previous": start}, 5, 9)
    got = search.greedy_search(numpy_step, {"previous": start}, 5, 9)
    np.testing.assert_array_equal(got[0], ops.convert_to_numpy(expected[0]))
    np.testing.assert_allclose(got[1], ops.convert_to_numpy(expected[1]), rtol=1e-6)


def test_runtime_beam_refuses_what_tandems_refuses():
    numpy_step, _ = trigram(0)
    start = {"previous": np.full((1,), START_ID, dtype=np.int32)}
    with pytest.raises(ValueError, match="nbest"):
        search.beam_search(numpy_step, start, 1, 5, beam_size=2, nbest=3)


# --- exported models ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def seed_export(tmp_path_factory, tiny_model_dir) -> Path:
    """The conftest's seed model exported by the command; its report is kept beside it."""
    output = tmp_path_factory.mktemp("exports") / "seed"
    code = main(["export", str(tiny_model_dir), "-o", str(output)])
    assert code == 0
    return output


def _train(tmp_path_factory, name: str, **model) -> Path:
    from conftest import TINY_PAIRS
    from tandem.config import Config
    from tandem.training import train

    config = Config().replace("model", latent_dim=16, **model)
    config = config.replace("train", epochs=1, batch_size=4, validation_split=0.25)
    output = tmp_path_factory.mktemp("models") / name
    train(TINY_PAIRS, config, output, verbose=0)
    return output


@pytest.fixture(scope="session", params=sorted(FAMILIES))
def family_export(request, tmp_path_factory) -> tuple[Path, Path]:
    model_dir = _train(tmp_path_factory, request.param, **FAMILIES[request.param])
    output = tmp_path_factory.mktemp("exports") / request.param
    export_model(model_dir, output)
    return model_dir, output


def assert_same_translations(model_dir: Path, export_dir: Path) -> None:
    translator, runtime = Translator.from_dir(model_dir), OnnxTranslator(export_dir)
    assert runtime.translate(TEXTS) == translator.translate(TEXTS)
    for options in ({"beam_size": 3, "nbest": 2}, {"beam_size": 4, "alpha": 0.6, "nbest": 3}):
        expected = [
            [(h.text, h.score) for h in t.hypotheses]
            for t in translator.translate_stream(TEXTS, strategy="beam", **options)
        ]
        got = runtime.hypotheses(TEXTS, "beam", **options)
        assert [[text for text, _ in h] for h in got] == [[text for text, _ in h] for h in expected]
        for found, wanted in zip(got, expected, strict=True):
            for (_, score), (_, wanted_score) in zip(found, wanted, strict=True):
                assert score == wanted_score or score == pytest.approx(wanted_score, abs=1e-4)


def test_the_seed_model_decodes_the_same_exported(tiny_model_dir, seed_export):
    assert_same_translations(tiny_model_dir, seed_export)


@pytest.mark.slow
def test_every_family_decodes_the_same_exported(family_export):
    assert_same_translations(*family_export)


@pytest.mark.slow
def test_the_transformer_decodes_the_same_exported(tmp_path, tiny_transformer_dir):
    export_model(tiny_transformer_dir, tmp_path / "transformer")
    assert_same_translations(tiny_transformer_dir, tmp_path / "transformer")
    manifest = json.loads((tmp_path / "transformer" / "manifest.json").read_text())
    assert manifest["static_source_length"] is None  # the source length stays dynamic
    assert manifest["decoder_cache_length"] == manifest["max_target_length"]


def test_the_manifest_names_the_graphs_inputs_outputs_and_state(seed_export, tiny_model_dir):
    manifest = json.loads((seed_export / "manifest.json").read_text())
    assert {p.name for p in seed_export.iterdir()} == {
        "manifest.json",
        "encoder.onnx",
        "decoder_step.onnx",
        "source_vocab.json",
        "target_vocab.json",
    }
    step = manifest["decoder_step"]
    assert [i["name"] for i in step["inputs"]] == [
        "decoder_inputs",
        "decoder_state_input_h",
        "decoder_state_input_c",
    ]
    assert [o["name"] for o in step["outputs"]] == [
        "decoder_outputs",
        "decoder_state_output_h",
        "decoder_state_output_c",
    ]
    assert step["inputs"][0] == {"name": "decoder_inputs", "dtype": "int32", "shape": ["batch", 1]}
    assert manifest["encoder"]["inputs"][0]["shape"] == ["batch", "source_steps"]
    assert manifest["state"][0] == {
        "decoder_input": "decoder_state_input_h",
        "encoder_output": "decoder_state_h",
        "decoder_output": "decoder_state_output_h",
    }
    assert manifest["reserved_ids"] == {"pad": 0, "start": 1, "end": 2, "unk": 3}
    assert manifest["source_padding"] == "bucket"  # masked: padded as `Translator` pads
    assert {"jax2onnx", "onnx", "onnxruntime", "keras", "jax"} <= set(manifest["versions"])
    assert manifest["opset"] == 23 and manifest["agreement"]["sentences"] == 8


def test_each_familys_state_layout(family_export):
    _, export_dir = family_export
    manifest = json.loads((export_dir / "manifest.json").read_text())
    if manifest["model"]["attention"] == "none":  # the seed: it reads padding
        assert manifest["source_padding"] == "full"
        assert all(s["decoder_output"] is not None for s in manifest["state"])
        return
    constant = {s["decoder_input"] for s in manifest["state"] if s["decoder_output"] is None}
    assert constant == {"encoder_outputs_input", "source_mask_input"}
    inputs = {i["name"]: i["shape"] for i in manifest["decoder_step"]["inputs"]}
    # Memory and mask share the batch and source-length symbols.
    assert inputs["encoder_outputs_input"][:2] == inputs["source_mask_input"]
    assert inputs["source_mask_input"] == ["batch", "source_steps"]
    assert manifest["attention_weights"] == "attention_weights"


BLOCK_KERAS_AND_JAX = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("keras", "jax", "jaxlib", "jax2onnx"):
            raise ImportError(f"{name} may not be imported here")
sys.meta_path.insert(0, Block())
from tandem.runtime import OnnxTranslator
print(OnnxTranslator(sys.argv[1]).translate(["Go.", "Hi."], strategy="beam", beam_size=3))
"""


def test_the_runtime_imports_and_translates_without_keras_or_jax(seed_export, tiny_model_dir):
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_KERAS_AND_JAX, str(seed_export)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    translator = Translator.from_dir(tiny_model_dir)
    expected = translator.translate(["Go.", "Hi."], strategy="beam", beam_size=3)
    assert done.stdout.strip() == repr(expected)


def test_the_runtime_refuses_what_the_model_cannot_hold(seed_export, tmp_path):
    with pytest.raises(ValueError, match="strategy"):
        OnnxTranslator(seed_export).translate(["Go."], strategy="sample")
    with pytest.raises(Exception, match="not an export directory"):
        OnnxTranslator(tmp_path)


# --- the command and its refusals -----------------------------------------------------------


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["export", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_the_command_exports_whole(seed_export):
    assert leftovers(seed_export.parent) == ["seed"]  # no temporary directory is left
    assert oct(seed_export.stat().st_mode & 0o777) == oct(0o755)


def test_an_existing_output_is_refused(capsys, tiny_model_dir, tmp_path):
    (tmp_path / "out").mkdir()
    code, _, err = run_cli(capsys, tiny_model_dir, "-o", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and "exists" in err


def test_a_bad_model_dir_is_refused_in_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, tmp_path / "missing", "-o", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and "no such model directory" in err
    assert leftovers(tmp_path) == []


def test_a_missing_export_extra_names_the_install(capsys, monkeypatch, tiny_model_dir, tmp_path):
    monkeypatch.setitem(sys.modules, "jax2onnx", None)  # import fails as if not installed
    code, _, err = run_cli(capsys, tiny_model_dir, "-o", tmp_path / "out")
    assert code == 2 and "pip install 'tandem[export]'" in err and err.count("\n") == 1
    assert leftovers(tmp_path) == []


def test_a_model_that_cannot_be_converted_is_refused_with_the_reason(
    capsys, monkeypatch, tiny_model_dir, tmp_path
):
    import tandem.export.writer as writer

    def fail(model, directory):
        (directory / "encoder.onnx").write_bytes(b"half")
        raise NotImplementedError("Reverse scan is not supported in IR pipeline.")

    monkeypatch.setattr(writer, "export_graphs", fail)
    code, _, err = run_cli(capsys, tiny_model_dir, "-o", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1
    assert "cannot be exported: Reverse scan is not supported" in err
    assert leftovers(tmp_path) == []  # not even the temporary directory


def test_graphs_that_decode_differently_are_not_kept(
    monkeypatch, seed_export, tiny_model_dir, tmp_path
):
    import tandem.export.writer as writer

    def copy_graphs(model, directory):  # the seed's graphs, without converting them again
        for name in ("encoder.onnx", "decoder_step.onnx"):
            shutil.copy(seed_export / name, directory / name)
        manifest = json.loads((seed_export / "manifest.json").read_text())
        keys = ("encoder", "decoder_step", "state", "decoder_probabilities", "attention_weights")
        return {key: manifest[key] for key in (*keys, "opset")}

    original = OnnxTranslator.translate

    def wrong(self, texts, strategy="greedy", **options):
        return [text + "!" for text in original(self, texts, strategy, **options)]

    monkeypatch.setattr(writer, "export_graphs", copy_graphs)
    monkeypatch.setattr(OnnxTranslator, "translate", wrong)
    with pytest.raises(ExportError, match="differently from the model .greedy."):
        export_model(tiny_model_dir, tmp_path / "out")
    assert leftovers(tmp_path) == []
    monkeypatch.setattr(OnnxTranslator, "translate", original)
    export_model(tiny_model_dir, tmp_path / "out")  # the same graphs, agreeing, are kept
    assert leftovers(tmp_path) == ["out"]
