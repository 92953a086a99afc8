import pytest
import sacrebleu

from tandem.evaluation import score


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
