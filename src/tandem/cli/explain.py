"""`tandem explain`: a model's three graphs, their hand-off and the decode of one text."""

from __future__ import annotations

import argparse
import sys

from tandem.errors import TandemError

NO_DOT = "Graphviz's dot is not on PATH: the diagrams are written as DOT text only"


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "explain", help="show a model's graphs, their hand-off and the decode of a text"
    )
    parser.add_argument("model_dir", help="model directory written by tandem train")
    parser.add_argument("--text", default="Go.", help="the source to trace (default: %(default)s)")
    parser.add_argument(
        "-o",
        "--output",
        help="directory for explain.json, explain.txt, explain.html and the diagrams "
        "(default: the chosen format on stdout)",
    )
    parser.add_argument(
        "--format",
        choices=("text", "json", "html"),
        default="text",
        help="text: a terminal summary; json: the same data; html: one self-contained page",
    )
    parser.add_argument("--beam", type=int, help="also trace a beam search of this size")
    parser.add_argument(
        "--alpha", type=float, default=0.0, help="the beam's length normalisation (default: 0)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tandem.explain import explain, render
    from tandem.translator import Translator

    if not args.text.strip():
        raise TandemError("--text is empty: give a source to trace")
    if args.beam is not None and args.beam < 1:
        raise TandemError(f"--beam must be at least 1, got {args.beam}")
    if args.output is None:
        from tandem.cli.io import require_stdout

        require_stdout()
    translator = Translator.from_dir(args.model_dir)
    explanation = explain(translator, args.text, beam=args.beam, alpha=args.alpha)
    models = (translator.training_model, translator.encoder_model, translator.decoder_model)
    if args.output is not None:
        if not render.save(explanation, models, args.output):
            print(f"tandem: note: {NO_DOT}", file=sys.stderr)
    elif args.format == "json":
        print(render.to_json(explanation))
    elif args.format == "html":
        dots = render.dot_texts(models, explanation)
        svgs = render.render_svgs(dots)
        if svgs is None:
            print(f"tandem: note: {NO_DOT}", file=sys.stderr)
        sys.stdout.write(render.to_html(explanation, svgs, dots))
    else:
        print(render.to_text(explanation))
    return 0
