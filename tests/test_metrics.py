import pytest
import sacrebleu

from tandem.evaluation import error_rates, score


def test_all_references_of_a_source_count_together():
    hypotheses = ["Va !", "Bonjour !"]
    references = [["Bouge !", "Va !"], ["Bonjour !"]]
    result = score(hypotheses, references)
    assert result["chrf"] == pytest.approx(100.0)
    assert result["exact_match"] == 100.0
    assert result["n_sources"] == 2


def test_matches_sacrebleu_with_reference_streams():
    hypotheses = ["le chat est là", "il pleut"]
    references = [["le chat est ici", "le chat est là-bas"], ["il pleut beaucoup"]]
    expected = sacrebleu.corpus_chrf(
        hypotheses, [["le chat est ici", "il pleut beaucoup"], ["le chat est là-bas", None]]
    )
    result = score(hypotheses, references)
    assert result["chrf"] == pytest.approx(expected.score)
    assert result["exact_match"] == 0.0
    assert result["signatures"]["chrf"].startswith("nrefs:var")
    assert "tok:13a" in result["signatures"]["bleu"]


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="1 hypotheses but 2 reference sets"):
        score(["a"], [["a"], ["b"]])


def test_error_rates_use_the_closest_reference():
    hypotheses = ["K AE T", "D AO G", "B ER D"]
    references = [["K AH T", "K AE T"], ["D AA G"], ["B ER D Z", "B ER"]]
    rates = error_rates(hypotheses, references)
    assert rates["wer"] == pytest.approx(100 * 2 / 3)
    # distances 0 (K AE T), 1 (D AA G), 1 (B ER D Z and B ER tie: the shorter, stricter one)
    assert rates["per"] == pytest.approx(100 * 2 / (3 + 3 + 2))


@pytest.mark.parametrize("metric", [score, error_rates])
@pytest.mark.parametrize(
    "hypotheses, references, message",
    [
        # A flat list would be read as reference sets of single characters (chrF 62.5).
        (["a b"], ["a b"], r"references\[0\] must be a list of strings .*got 'a b'"),
        (["a b"], [["a b", 3]], r"references\[0\] must be a list of strings"),
        ("a b", [["a b"]], "hypotheses must be a sequence, not one str"),
        ([None], [["a b"]], r"hypotheses\[0\] must be a string, got None"),
    ],
)
def test_misshapen_inputs_are_refused_not_scored(metric, hypotheses, references, message):
    with pytest.raises(TypeError, match=message):
        metric(hypotheses, references)
