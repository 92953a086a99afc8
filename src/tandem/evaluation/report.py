"""Evaluate a translator on a parallel file: scores plus everything needed to reproduce them."""

from __future__ import annotations

import warnings
from pathlib import Path

from tandem.config import DecodeConfig, decode_config
from tandem.data.reading import group_references, read_pairs
from tandem.errors import OverlongSourceWarning, TandemError
from tandem.evaluation.likelihood import teacher_forced_cross_entropy
from tandem.evaluation.metrics import error_rates, score
from tandem.translator import Translator


def evaluate(
    translator,
    data_path: str | Path,
    decode: DecodeConfig | None = None,
    *,
    target_path: str | Path | None = None,
    eligible_only: bool = False,
    skip_bad_lines: bool = False,
    max_samples: int | None = None,
    multi_reference: bool = False,
) -> dict:
    """Translate every distinct source of a parallel file and score it against all its targets.

    Args:
        translator: a `tandem.Translator`.
        data_path: parallel data (tab layout, zip archive, or sources with `target_path`).
        decode: decoding settings (default: batched greedy).
        target_path: target file for aligned text files.
        eligible_only: score only sources whose tokens and length the model has seen in
            training (the seed benchmark's rule).
        skip_bad_lines: skip malformed lines instead of failing.
        max_samples: read only the first N valid lines (skipped bad lines do not count).
        multi_reference: every column after the source is a reference
            ("WORD<TAB>pron1<TAB>pron2"); by default only the second is, and later columns
            (Tatoeba's attribution) are ignored.

    Word targets (phonemes, say) are scored with their references' whitespace made single
    spaces, as the model writes them: it cannot produce any other. `cross_entropy` (nats per
    reference token, end tokens included) and `perplexity` score every (source, reference)
    pair under teacher forcing (see `teacher_forced_cross_entropy`).

    Returns:
        The report: scores, signatures, decoding settings, data file and model directory.
    """
    if not isinstance(translator, Translator):
        raise TypeError(
            f"translator must be a tandem.Translator (Translator.from_dir(path)), got "
            f"{type(translator).__name__}"
        )
    decode = decode_config(decode)
    data = read_pairs(
        data_path,
        target_path,
        max_samples=max_samples,
        skip_bad_lines=skip_bad_lines,
        multi_reference=multi_reference,
    )
    grouped = group_references(data.pairs)
    if eligible_only:
        grouped = [(s, refs) for s, refs in grouped if translator.is_within_training_range(s)]
        if not grouped:
            raise TandemError(f"{data_path}: no source is within the model's training range")
    hypotheses, truncated = _translate(translator, grouped, decode, data_path)
    references = [refs for _, refs in grouped]
    words = translator.target_vocab.kind == "word"  # phonemes, words
    if words:
        references = [[" ".join(ref.split()) for ref in refs] for refs in references]
    report = score(hypotheses, references)
    if words:  # word and token error rates
        report.update(error_rates(hypotheses, references))
    report.update(_likelihood(translator, data.pairs, grouped, decode.batch_size))
    report.update(
        data=str(data_path),
        target=None if target_path is None else str(target_path),
        multi_reference=multi_reference,
        max_samples=max_samples,
        model_dir=str(translator.path),
        decoding={
            **decode.in_use(),
            "max_length": decode.max_length or translator.max_target_length,
        },
        eligible_only=eligible_only,
        skipped_lines=data.skipped,
        truncated_sources=truncated,
        n_pairs=len(data.pairs),
    )
    return report


def _likelihood(translator, pairs, grouped, batch_size: int) -> dict:
    """Teacher-forced cross-entropy and perplexity of every pair whose source is scored."""
    scored = {source for source, _ in grouped}
    likelihood = teacher_forced_cross_entropy(
        translator, [pair for pair in pairs if pair[0] in scored], batch_size
    )
    return {
        "cross_entropy": likelihood["cross_entropy"],
        "perplexity": likelihood["perplexity"],
        "cross_entropy_tokens": likelihood["tokens"],
    }


def _translate(translator, grouped, decode: DecodeConfig, data_path) -> tuple[list[str], int]:
    """The translations of the grouped sources, and how many were truncated, warned once."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", OverlongSourceWarning)
        hypotheses = translator.translate([source for source, _ in grouped], decode)
    truncated = 0
    for warning in caught:  # one line for all truncated sources, the others passed on
        if issubclass(warning.category, OverlongSourceWarning):
            truncated += 1
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    if truncated:
        warnings.warn(
            f"{data_path}: {truncated} of {len(grouped)} sources are longer than the model's "
            f"maximum of {translator.max_source_length} tokens and were truncated "
            "(--eligible-only scores only the sources within the training range)",
            OverlongSourceWarning,
            stacklevel=3,  # the caller of evaluate
        )
    return hypotheses, truncated
