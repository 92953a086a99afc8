"""The Translator facade: batched greedy decoding, unknown characters, overlong and empty input."""

import math

import pytest

from tandem import Translator
from tandem.errors import OverlongSourceWarning, TandemError
from tandem.translator import WINDOW_BATCHES


@pytest.fixture(scope="module")
def translator(tiny_model_dir):
    return Translator.from_dir(tiny_model_dir)


def test_exposes_the_three_graphs(translator):
    assert translator.decoder_model.name == "decoder_model"
    assert translator.encoder_model.name == "encoder_model"
    assert translator.training_model.name == "training_model"


def test_batching_does_not_change_results(translator):
    texts = ["Go.", "Hello!", "Wait!", "I see.", "Run!"]
    one_at_a_time = [translator.translate([t], batch_size=1)[0] for t in texts]
    assert translator.translate(texts, batch_size=2) == one_at_a_time
    assert translator.translate(texts, batch_size=64) == one_at_a_time


def test_characters_never_seen_in_training_do_not_crash(translator):
    # The classic example raises KeyError here; tandem maps them to the unknown id.
    assert translator.source_vocab.unknown_tokens("Zür ✓") != []
    [translation] = translator.translate(["Zür ✓"])
    assert isinstance(translation, str)


def test_empty_input_gives_empty_output(translator):
    assert translator.translate(["", "Go."])[0] == ""
    # Every source gets nbest hypotheses, so output lines map back to their sources.
    results = list(translator.translate_stream(["", "Go."], strategy="beam", nbest=2))
    assert [[h.text for h in r.hypotheses] for r in results][0] == ["", ""]
    assert len(results[1].hypotheses) == 2


@pytest.mark.parametrize("texts", ["Go.", ["Go.", None], ["Go.", 3]])
def test_texts_must_be_strings(translator, texts):
    with pytest.raises(TypeError, match="texts must be"):
        translator.translate(texts)


def test_decoding_settings_must_be_a_decode_config(translator, tiny_tsv):
    from tandem.errors import TandemError
    from tandem.evaluation import evaluate

    message = "decode must be a tandem.config.DecodeConfig, got dict"
    with pytest.raises(TypeError, match=message):
        translator.translate(["Go."], {"strategy": "beam"})
    with pytest.raises(TypeError, match=message):
        evaluate(translator, tiny_tsv, {"strategy": "beam"})
    for count in ("3", 2.5, True):  # True would read one line, 2.5 three
        with pytest.raises(TandemError, match="max_samples must be an integer of at least 1"):
            evaluate(translator, tiny_tsv, max_samples=count)


def test_overlong_input_is_truncated_with_a_warning_or_refused(translator):
    long_text = "Go." * 20
    with pytest.warns(UserWarning, match="longer than the model's maximum"):
        translator.translate([long_text])
    with pytest.raises(TandemError, match="longer than the model's maximum"):
        translator.translate([long_text], overlong="error")


def test_max_length_caps_the_output(translator):
    [translation] = translator.translate(["Zür ✓"], max_length=2)
    assert len(translation) <= 2


def test_within_training_range(translator):
    assert translator.is_within_training_range("Go.")
    assert not translator.is_within_training_range("Zürich")
    assert not translator.is_within_training_range("Go." * 20)


def test_stream_is_lazy_and_keeps_input_order(translator):
    consumed = []
    sentences = ["Go.", "Hello!", "I see.", "Hi."]

    def texts():
        for i in range(100):
            consumed.append(i)
            yield sentences[i % 4]

    stream = translator.translate_stream(texts(), batch_size=2)
    first = next(stream)
    assert len(consumed) == 2 * WINDOW_BATCHES  # one window read, not the whole input
    rest = list(stream)
    assert [r.source for r in [first, *rest]] == [sentences[i % 4] for i in range(100)]
    expected = dict(zip(sentences, translator.translate(sentences), strict=True))
    assert all(r.text == expected[r.source] for r in rest)


def test_stream_translates_what_is_ready_when_no_more_is(translator):
    consumed = []
    sentences = ["Go.", "Hello!", "Go." * 30, "Hi."]

    def texts():
        for text in sentences:
            consumed.append(text)
            yield text

    stream = translator.translate_stream(texts(), batch_size=8, more_ready=lambda: False)
    with pytest.warns(OverlongSourceWarning, match="text 3: source of 90 tokens"):
        results = []
        for result in stream:
            assert len(consumed) == len(results) + 1  # answered before the next is read
            results.append(result)
    with pytest.warns(OverlongSourceWarning):
        assert [r.text for r in results] == translator.translate(sentences)
    # Each text draws from its own stream (its position), so six of one text differ.
    drawn = translator.translate_stream(
        ["Go."] * 6, strategy="sample", temperature=5.0, seed=3, more_ready=lambda: False
    )
    assert len({r.text for r in drawn}) > 1


def test_beam_search_returns_sorted_distinct_nbest(translator):
    [result] = translator.translate_stream(["Hello!"], strategy="beam", beam_size=4, nbest=3)
    scores = [h.score for h in result.hypotheses]
    assert len(result.hypotheses) == 3
    assert scores == sorted(scores, reverse=True)
    assert len({h.text for h in result.hypotheses}) == 3


def test_beam_returns_only_the_hypotheses_that_exist(translator):
    # One token each: fewer distinct hypotheses exist than the 100 asked for.
    [result] = translator.translate_stream(
        ["Hello!"], strategy="beam", beam_size=100, nbest=100, max_length=1
    )
    scores = [h.score for h in result.hypotheses]
    assert 1 < len(scores) < 100 and all(math.isfinite(score) for score in scores)
    assert len({h.text for h in result.hypotheses}) == len(scores)


def test_beam_of_one_equals_greedy(translator):
    texts = ["Go.", "Hello!", "Wait!"]
    assert translator.translate(texts, strategy="beam", beam_size=1) == translator.translate(texts)


def test_sampling_repeats_itself_with_the_same_seed(translator):
    texts = ["Go.", "Hello!", "Wait!", "Run!"] * 3
    first = translator.translate(texts, strategy="sample", seed=3, batch_size=4)
    again = translator.translate(texts, strategy="sample", seed=3, batch_size=4)
    other = translator.translate(texts, strategy="sample", seed=4, batch_size=4)
    assert first == again
    assert first != other
    # A text draws from the stream of its position, whatever the batch it is decoded in.
    for size in (1, 3, 64):
        assert translator.translate(texts, strategy="sample", seed=3, batch_size=size) == first
    # top-k of one is greedy, whatever the seed.
    assert translator.translate(texts, strategy="sample", top_k=1, seed=9) == translator.translate(
        texts
    )


def reference_log_probs(translator, source, tokens):
    """Step the public decoder_model along `tokens` (a plain Python loop over the real graphs):
    the log-probability of each token and the ids ranked at each step."""
    import numpy as np

    from tandem.data.vocabulary import START_ID

    source_ids = np.array([translator.source_vocab.encode(source)], "int32")
    states = list(translator.encoder_model.predict(source_ids, verbose=0))
    previous, log_probs, rankings = START_ID, [], []
    for token in tokens:
        outputs = translator.decoder_model.predict_on_batch([np.array([[previous]])] + states)
        probs = outputs[0][0, 0]
        log_probs.append(float(np.log(max(probs[token], 1e-30))))
        rankings.append(list(np.argsort(-probs)))
        states = list(outputs[1 : 1 + len(states)])
        previous = token
    return log_probs, rankings


def output_ids(translator, text):
    from tandem.data.vocabulary import END_ID

    ids = translator.target_vocab.encode(text)
    return ids + [END_ID] if len(ids) + 1 <= translator.max_target_length else ids


@pytest.fixture(scope="module")
def transformer(tiny_transformer_dir):
    return Translator.from_dir(tiny_transformer_dir)


@pytest.mark.parametrize("family", ["translator", "transformer"])
def test_strategies_agree_with_a_reference_loop_over_the_decoder_model(family, request):
    translator = request.getfixturevalue(family)
    sources = ["Go.", "Hello!", "I see."]
    greedy = translator.translate(sources)
    assert any(greedy)  # the tiny model says something, so the checks below have steps
    for source, text in zip(sources, greedy, strict=True):
        tokens = output_ids(translator, text)
        greedy_log_probs, rankings = reference_log_probs(translator, source, tokens)
        # Greedy takes the decoder_model's most probable token at every step, and scores
        # the decoder_model's log-probability of its output.
        assert all(token == ranking[0] for token, ranking in zip(tokens, rankings, strict=True))
        [result] = translator.translate_stream([source])
        assert result.hypotheses[0].score == pytest.approx(sum(greedy_log_probs), abs=1e-3)

        [beam] = translator.translate_stream([source], strategy="beam", beam_size=4)
        best = beam.hypotheses[0]
        log_probs, _ = reference_log_probs(translator, source, output_ids(translator, best.text))
        # The beam's score is the decoder_model's log-probability of its output (alpha 0),
        # and no lower than greedy's.
        assert best.score == pytest.approx(sum(log_probs), abs=1e-3)
        assert best.score >= sum(greedy_log_probs) - 1e-3

        [sampled] = translator.translate_stream([source], strategy="sample", top_k=3, seed=5)
        sampled_ids = output_ids(translator, sampled.text)
        log_probs, rankings = reference_log_probs(translator, source, sampled_ids)
        # Every sampled token is among the decoder_model's 3 most probable at its step; the
        # score is the model's log-probability of the sample (not top-k's).
        assert all(t in r[:3] for t, r in zip(sampled_ids, rankings, strict=True))
        assert sampled.hypotheses[0].score == pytest.approx(sum(log_probs), abs=1e-3)


def test_samples_do_not_repeat_from_one_window_to_the_next(translator):
    texts = ["Hello!"] * (2 * WINDOW_BATCHES)
    samples = translator.translate(texts, strategy="sample", seed=1, batch_size=1)
    assert samples[:WINDOW_BATCHES] != samples[WINDOW_BATCHES:]


def test_a_batch_size_beyond_the_texts_decodes_only_rows_that_hold_them(translator):
    # A billion-row batch would not fit in memory: the texts get the power of two that holds
    # them (at least the default batch size), and translate as they do in smaller batches.
    texts = ["Go.", "Hello!", "Wait!"]
    expected = translator.translate(texts, batch_size=2)
    assert translator.translate(texts, batch_size=10**9) == expected
    assert translator.translate(texts * 30, batch_size=10**9) == expected * 30
    rows = {key[1] for key in translator._compiled if key[0] == "greedy"}
    assert {64, 128} <= rows and 10**9 not in rows
