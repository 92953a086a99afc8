"""`tandem evaluate`: score a model's translations of a parallel file."""

from __future__ import annotations

import argparse
import json

from tandem.cli.decoding import add_decode_arguments, decode_config
from tandem.cli.io import require_stdout, say_skipped, utf8
from tandem.cli.options import given
from tandem.config import DecodeConfig
from tandem.errors import TandemError


def add_parser(commands) -> None:
    evaluate = commands.add_parser("evaluate", help="score a model with chrF, BLEU, exact match")
    evaluate.add_argument("model_dir", help="model directory written by tandem train")
    evaluate.add_argument("data", help="parallel data with references")
    evaluate.add_argument("--target", help="target text file, line-aligned with DATA")
    evaluate.add_argument(
        "--eligible-only",
        action="store_true",
        help="score only sources within the model's training range",
    )
    add_decode_arguments(evaluate, nbest=False)  # evaluate scores the best output only
    evaluate.add_argument(
        "--multi-reference",
        action="store_true",
        help="every column after the source is a reference (WORD<TAB>pron1<TAB>pron2); "
        "by default only the second is and later ones (Tatoeba's attribution) are ignored",
    )
    evaluate.add_argument(
        "--max-samples",
        type=int,
        help="the sources of the first N valid lines (bad lines that --skip-bad-lines skips do "
        "not count; default: all)",
    )
    evaluate.add_argument("--skip-bad-lines", action="store_true", help="skip malformed lines")
    evaluate.add_argument("--format", choices=("text", "json"), default="text")
    evaluate.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tandem.evaluation import evaluate
    from tandem.translator import Translator

    require_stdout()
    if given(args, DecodeConfig, "nbest") not in (None, 1):
        raise TandemError("--nbest: evaluate scores one output per source (the best)")
    translator = Translator.from_dir(args.model_dir)
    report = evaluate(
        translator,
        args.data,
        decode_config(args),
        target_path=args.target,
        eligible_only=args.eligible_only,
        skip_bad_lines=args.skip_bad_lines,
        max_samples=args.max_samples,
        multi_reference=args.multi_reference,
    )
    if report["skipped_lines"]:
        say_skipped(
            report["skipped_lines"], f"{args.data} + {args.target}" if args.target else args.data
        )
    if args.format == "json":
        # Paths are the bytes they were given: ones that are not UTF-8 are shown with U+FFFD.
        report = {k: utf8(v) if isinstance(v, str) else v for k, v in report.items()}
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(f"chrF   {report['chrf']:6.2f}  {report['signatures']['chrf']}")
        print(f"BLEU   {report['bleu']:6.2f}  {report['signatures']['bleu']}")
        print(f"exact  {report['exact_match']:6.2f}% of {report['n_sources']} sources")
        print(
            f"xent   {report['cross_entropy']:6.4f}  nats per reference token (perplexity "
            f"{report['perplexity']:.2f}, teacher-forced over {report['cross_entropy_tokens']} "
            "tokens)"
        )
        if "wer" in report:  # word targets (phonemes, words)
            print(f"WER    {report['wer']:6.2f}% (wrong outputs; right = any reference)")
            print(f"PER    {report['per']:6.2f}% (token edits to the closest reference)")
    return 0
