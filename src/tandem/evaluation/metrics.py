"""Corpus scores through sacreBLEU, with every reference of a source used together."""

from __future__ import annotations

from collections.abc import Sequence

from rapidfuzz.distance import Levenshtein
from sacrebleu.metrics import BLEU, CHRF


def _check_texts(hypotheses, references) -> None:
    """Strings, and a sequence of strings per source: one string alone would be read as a
    reference set of its characters."""
    for name, value in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(value, str | bytes):
            raise TypeError(f"{name} must be a sequence, not one {type(value).__name__}")
    for index, hypothesis in enumerate(hypotheses):
        if not isinstance(hypothesis, str):
            raise TypeError(f"hypotheses[{index}] must be a string, got {hypothesis!r}")
    for index, refs in enumerate(references):
        if isinstance(refs, str | bytes) or not all(isinstance(ref, str) for ref in refs):
            raise TypeError(
                f"references[{index}] must be a list of strings (all the references of "
                f"source {index + 1}), got {refs!r}"
            )


def score(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict:
    """Score translations against one or more references each.

    Args:
        hypotheses: one translation per source.
        references: for each source, all its accepted translations (at least one).

    Returns:
        dict with `chrf`, `bleu`, `exact_match` (percent of hypotheses equal to one of their
        references), `n_sources`, and the sacreBLEU `signatures` of both metrics.

    Example:
        >>> round(score(["Va !"], [["Va !", "Bouge !"]])["chrf"], 1)
        100.0
    """
    _check_texts(hypotheses, references)
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference sets")
    if not hypotheses:
        raise ValueError("nothing to score")
    if any(not refs for refs in references):
        raise ValueError("every source needs at least one reference")
    # sacreBLEU takes reference streams; None marks a source with fewer references.
    depth = max(len(refs) for refs in references)
    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(depth)]
    chrf, bleu = CHRF(), BLEU()
    hypotheses = list(hypotheses)
    exact = sum(hyp in refs for hyp, refs in zip(hypotheses, references, strict=True))
    return {
        "chrf": chrf.corpus_score(hypotheses, streams).score,
        "bleu": bleu.corpus_score(hypotheses, streams).score,
        "exact_match": 100.0 * exact / len(hypotheses),
        "n_sources": len(hypotheses),
        "signatures": {"chrf": str(chrf.get_signature()), "bleu": str(bleu.get_signature())},
    }


def error_rates(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict:
    """Word and token error rates as the G2P literature reports them.

    A hypothesis is correct when it equals ANY of its references (WER = wrong / total). The
    token (phoneme) error rate is the edit distance to the closest reference, summed, over
    the summed lengths of those closest references. Tokens are whitespace-separated.

    Args:
        hypotheses: one output per source.
        references: for each source, all accepted outputs.

    Returns:
        dict with `wer` and `per` in percent and `n_sources`.

    Example:
        >>> error_rates(["K AE T"], [["K AE T", "K AH T"]])["wer"]
        0.0
    """
    _check_texts(hypotheses, references)
    if len(hypotheses) != len(references) or not hypotheses or not all(references):
        raise ValueError("need one non-empty reference set per hypothesis")
    wrong = errors = length = 0
    for hypothesis, refs in zip(hypotheses, references, strict=True):
        tokens = hypothesis.split()
        candidates = [ref.split() for ref in refs]
        distance, closest = min((Levenshtein.distance(tokens, ref), len(ref)) for ref in candidates)
        wrong += tokens not in candidates
        errors += distance
        length += closest
    return {
        "wer": 100.0 * wrong / len(hypotheses),
        "per": 100.0 * errors / max(length, 1),
        "n_sources": len(hypotheses),
    }
