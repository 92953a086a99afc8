"""`tandem.explain`: the graphs, the hand-off map, the traced decode and the generated loop,
checked against the real graphs and `Translator` on tiny trained models."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from tandem import Translator
from tandem.explain import explain
from tandem.explain.trace import as_input, source_array

TEXTS = ["Go.", "Hello!", "I see."]


@pytest.fixture(scope="module")
def seed(tiny_model_dir):
    return Translator.from_dir(tiny_model_dir)


@pytest.fixture(scope="module")
def transformer(tiny_transformer_dir):
    return Translator.from_dir(tiny_transformer_dir)


@pytest.fixture(scope="module")
def attention_dir(tiny_attention_dir):
    return tiny_attention_dir


@pytest.fixture(scope="module")
def attention(attention_dir):
    return Translator.from_dir(attention_dir)


FAMILIES = ["seed", "attention", "transformer"]


def replay(translator, text, output_ids, models=None):
    """Feed the traced tokens through decoder_model in a plain loop: each step's probabilities."""
    from tandem.data.vocabulary import START_ID

    _, encoder, decoder = models or (None, translator.encoder_model, translator.decoder_model)
    source, _ = source_array(translator, text)
    states = list(encoder.predict_on_batch(as_input(encoder.inputs[0], source)))
    previous, rows = START_ID, []
    for token in output_ids:
        target = as_input(decoder.inputs[0], np.array([[previous]]))
        outputs = decoder.predict_on_batch([target] + states)
        rows.append(outputs[0][0, -1])
        states = outputs[1 : 1 + len(states)]
        previous = token
    return np.array(rows)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_trace_is_the_translators_decode_and_replays(family, request):
    translator = request.getfixturevalue(family)
    for text in TEXTS:
        explanation = explain(translator, text)
        trace = explanation.trace
        assert trace.output == translator.translate([text])[0]
        assert [s.chosen_id for s in trace.steps] == trace.output_ids
        probs = np.array([s.probs for s in trace.steps])
        np.testing.assert_allclose(replay(translator, text, trace.output_ids), probs, atol=1e-5)
        assert trace.stop == ("end token" if trace.output_ids[-1] == 2 else "max length")
        for step in trace.steps:  # the top 5 are sorted and the choice is the first allowed
            assert [p for _, p in step.top] == sorted((p for _, p in step.top), reverse=True)
            assert step.chosen == step.top[0][0]
        json.dumps(explanation.to_dict())  # JSON-serialisable as it is


@pytest.mark.parametrize("family", FAMILIES)
def test_the_beam_trace_ends_where_the_translators_beam_does(family, request):
    translator = request.getfixturevalue(family)
    for text in TEXTS:
        for beam, alpha in ((1, 0.0), (3, 0.0), (3, 0.6)):
            trace = explain(translator, text, beam=beam, alpha=alpha).trace
            expected = translator.translate([text], strategy="beam", beam_size=beam, alpha=alpha)[0]
            assert trace.beam_output == expected
            assert all(len(step.open) == beam for step in trace.beam)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_printed_code_translates_as_tandem_translate(family, request):
    translator = request.getfixturevalue(family)
    code = explain(translator, "Go.").code
    namespace: dict = {}
    exec(code, namespace)
    for text in TEXTS:
        text_out = namespace["decode_sequence"](
            text,
            translator.encoder_model,
            translator.decoder_model,
            translator.source_vocab,
            translator.target_vocab,
        )
        assert text_out == translator.translate([text])[0]


def test_graphs_share_layers_and_weights_by_identity(attention):
    graphs = explain(attention, "Go.").graphs
    names = [g.name for g in graphs.graphs]
    assert names == ["training_model", "encoder_model", "decoder_model"]
    assert sorted(graphs.shared_layers["decoder_dense"]) == ["decoder_model", "training_model"]
    assert len(graphs.shared_weights) > 0
    training = graphs.graphs[0]
    assert training.parameters == attention.training_model.count_params()
    decoder = graphs.graphs[2]
    assert decoder.inputs[0].name == "decoder_inputs"
    assert decoder.inputs[0].shape == ["batch", "None"]


@pytest.mark.parametrize("family", FAMILIES)
def test_the_handoff_map_pairs_states_by_name(family, request):
    translator = request.getfixturevalue(family)
    handoff = explain(translator, "Go.").graphs.handoff
    encoder = [h for h in handoff if h.source == "encoder_model"]
    assert [h.input_name for h in encoder] == [t.name for t in translator.decoder_model.inputs[1:]]
    if family == "seed":
        assert [(h.output_name, h.input_name) for h in encoder] == [
            ("encoder_lstm[1]", "decoder_state_input_h"),
            ("encoder_lstm[2]", "decoder_state_input_c"),
        ]
    if family == "attention":  # memory and mask go through the decoder unchanged
        passed = {h.input_name for h in handoff if h.passthrough}
        assert passed == {"encoder_outputs_input", "source_mask_input"}
    assert handoff[-1].input_name == "decoder_inputs"


def permuted(translator, order):
    """The encoder and decoder graphs with the decoder's states in `order` (encoder outputs,
    decoder state inputs and state outputs alike)."""
    encoder, decoder = translator.encoder_model, translator.decoder_model
    n = len(order)
    source = keras.Input(shape=encoder.inputs[0].shape[1:], dtype=encoder.inputs[0].dtype)
    outputs = encoder(source)
    new_encoder = keras.Model(source, [outputs[i] for i in order], name="encoder_model")
    inputs = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name) for t in decoder.inputs]
    reordered = [inputs[0]] + [inputs[1 + i] for i in order]
    results = decoder(inputs)
    states = results[1 : 1 + n]
    new_decoder = keras.Model(
        reordered,
        [results[0]] + [states[i] for i in order] + results[1 + n :],
        name="decoder_model",
    )
    return translator.training_model, new_encoder, new_decoder


def test_the_handoff_map_follows_a_model_with_another_state_order(seed):
    original = explain(seed, "Hello!")
    models = permuted(seed, [1, 0])  # c before h
    changed = explain(seed, "Hello!", models=models)
    inputs = [h.input_name for h in changed.graphs.handoff if h.source == "encoder_model"]
    assert inputs == ["decoder_state_input_c", "decoder_state_input_h"]
    assert inputs != [h.input_name for h in original.graphs.handoff if h.source == "encoder_model"]
    # the trace and the printed loop still decode the same text through the permuted graphs
    assert changed.trace.output == original.trace.output
    probs = np.array([s.probs for s in changed.trace.steps])
    np.testing.assert_allclose(
        replay(seed, "Hello!", changed.trace.output_ids, models), probs, atol=1e-5
    )
    namespace: dict = {}
    exec(changed.code, namespace)
    text = namespace["decode_sequence"](
        "Hello!", models[1], models[2], seed.source_vocab, seed.target_vocab
    )
    assert text == seed.translate(["Hello!"])[0]


@pytest.mark.parametrize("family", ["attention", "transformer"])  # the Transformer: its last
def test_attention_weights_cover_source_by_generated_tokens(family, request):  # cross-attention
    translator = request.getfixturevalue(family)
    trace = explain(translator, "Hello!").trace
    weights = np.array(trace.attention)
    assert weights.shape[0] == len(trace.steps)
    source, _ = source_array(translator, "Hello!")
    assert weights.shape[1] == source.shape[1]
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("family", ["attention", "transformer"])
def test_the_translators_attention_is_the_traced_attention(family, request):
    translator = request.getfixturevalue(family)
    trace = explain(translator, "Hello!").trace
    [attention] = translator.attention(["Hello!"], [trace.output])
    weights = np.array(attention.weights)
    assert weights.shape == (len(trace.steps), len(attention.source_tokens))
    assert attention.source_tokens == trace.source_tokens
    np.testing.assert_allclose(weights, np.array(trace.attention)[:, : weights.shape[1]], atol=1e-5)


def test_a_model_without_attention_says_so(seed):
    assert not seed.has_attention
    with pytest.raises(ValueError, match="no attention"):
        seed.attention(["Go."], ["Va !"])


@pytest.mark.parametrize("family", FAMILIES)
def test_teacher_forcing_shows_the_shifted_target(family, request):
    trace = explain(request.getfixturevalue(family), "Go.").trace
    forcing = trace.teacher_forcing
    # the training graph fed inference's tokens at once gives the traced probabilities
    assert forcing["largest_gap_training_vs_steps"] < 1e-4
    assert forcing["training_decoder_inputs"][0] == "<start>"
    assert forcing["inference_fed_back"][0] == "<start>"
    assert len(forcing["inference_fed_back"]) == len(trace.steps)


def test_empty_text_is_refused(seed):
    with pytest.raises(ValueError, match="empty"):
        explain(seed, "  ")


def test_cli_text_and_json_go_to_stdout(tiny_model_dir, capsys):
    from tandem.cli import main

    assert main(["explain", str(tiny_model_dir), "--text", "Go."]) == 0
    out = capsys.readouterr().out
    assert "decoder_state_input_h" in out and "def decode_sequence" in out
    assert main(["explain", str(tiny_model_dir), "--text", "Go.", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["trace"]["source"] == "Go."
    assert [g["name"] for g in data["graphs"]["graphs"]][0] == "training_model"
    assert main(["explain", str(tiny_model_dir), "--format", "html"]) == 0
    page = capsys.readouterr().out
    assert page.startswith("<!DOCTYPE html>") and "decoder_state_input_c" in page


def test_cli_writes_a_directory_with_a_self_contained_page(attention_dir, tmp_path, capsys):
    from tandem.cli import main

    out = tmp_path / "out"
    argv = ["explain", str(attention_dir), "--text", "Hello!", "-o", str(out), "--format", "html"]
    assert main([*argv, "--beam", "2"]) == 0
    names = {path.name for path in out.iterdir()}
    assert {"explain.json", "explain.txt", "explain.html", "decoder_model.dot"} <= names
    page = (out / "explain.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in page  # the attention heatmap, inline
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")
    assert "decode_sequence" in page and "Beam" in page


def test_cli_without_graphviz_says_so_once_and_writes_the_rest(
    tiny_model_dir, tmp_path, capsys, monkeypatch
):
    from tandem.cli import main
    from tandem.explain import render

    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    out = tmp_path / "out"
    assert main(["explain", str(tiny_model_dir), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dot" in err
    assert (out / "encoder_model.dot").read_text().startswith("digraph")
    assert not list(out.glob("*.svg"))
    assert "<pre>" in (out / "explain.html").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["explain", "/nonexistent/model"], "/nonexistent/model"),
        (["explain", "MODEL", "--text", " "], "--text is empty"),
    ],
)
def test_cli_bad_input_gets_one_line(argv, message, tiny_model_dir, capsys):
    from tandem.cli import main

    argv = [str(tiny_model_dir) if arg == "MODEL" else arg for arg in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("tandem: error:") and err.count("\n") == 1 and message in err


def test_the_html_report_opens_in_a_real_browser_with_every_image(
    attention_dir, browser, graphviz_dot, screenshot_path, tmp_path, capsys
):
    """Chromium loads explain.html without console errors; the diagrams (drawn by Graphviz's
    dot) and the heatmap all load. The screenshot stays in test-artifacts/."""
    from selenium.webdriver.common.by import By

    from browser import open_page
    from tandem.cli import main

    out = tmp_path / "explain"
    args = [str(attention_dir), "--text", "three", "-o", str(out), "--format", "html"]
    assert main(["explain", *args]) == 0
    capsys.readouterr()
    # dot was there, so it drew each graph as SVG and PNG.
    for graph in ("training_model", "encoder_model", "decoder_model", "handoff"):
        assert (out / f"{graph}.svg").read_text().lstrip().startswith("<?xml")
        assert (out / f"{graph}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = open_page(browser, (out / "explain.html").resolve().as_uri(), screenshot_path)
    assert report.ok, str(report)
    images = browser.find_elements(By.TAG_NAME, "img")
    # One diagram per graph (training, encoder, decoder), the hand-off map and the heatmap.
    assert len(images) >= 5
    handoff = (out / "handoff.dot").read_text()
    assert '-> "decoder_model_in1(t)"' in handoff  # the encoder's first state, into step t
    assert 'label="argmax"' in handoff  # the chosen token, into the next step
    assert report.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
