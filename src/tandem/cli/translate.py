"""`tandem translate`: translate texts given as arguments, in a file or on stdin."""

from __future__ import annotations

import argparse
import sys

from tandem.cli.decoding import add_decode_arguments, decode_config
from tandem.cli.io import TEXT_PLACE, ReadAhead, print_translation, require_stdout, utf8
from tandem.cli.options import add_options
from tandem.config import DecodeConfig
from tandem.errors import DataError, OverlongSourceError, TandemError


def add_parser(commands) -> None:
    translate = commands.add_parser("translate", help="translate text (arguments or stdin)")
    translate.add_argument("model_dir", help="model directory written by tandem train")
    translate.add_argument(
        "text", nargs="*", default=[], help="texts to translate (default: stdin lines)"
    )
    translate.add_argument("-i", "--input", help="file of sentences, one per line (default: stdin)")
    add_decode_arguments(translate)
    add_options(translate, DecodeConfig, "overlong")
    translate.add_argument(
        "--format",
        choices=("text", "tsv", "json"),
        default="text",
        help="text: one line per hypothesis; tsv: source, text, score (the model's "
        "log-probability of the text; tabs, newlines and backslashes escaped as \\t, \\n, "
        "\\\\); json: one object per source with all hypotheses",
    )
    translate.add_argument(
        "--progress",
        choices=("auto", "on", "off"),
        default="auto",
        help="progress bar on stderr (auto: when stderr is a terminal)",
    )
    translate.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from tandem.data.reading import read_lines
    from tandem.translator import Translator

    require_stdout()
    decode = decode_config(args)
    if args.text and args.input:
        raise TandemError("give texts as arguments or a file with --input, not both")
    for number, text in enumerate(args.text, 1):
        if text != utf8(text):  # as a file's line that is not UTF-8 is refused
            raise TandemError(
                f"argument {number} is not valid UTF-8: {utf8(text)[:40]!r} (tandem reads "
                "and writes UTF-8, whatever the locale)"
            )
    translator = Translator.from_dir(args.model_dir)
    lines = None if args.text else ReadAhead(text for _, text in read_lines(args.input or "-"))
    # Warnings about a text name it as errors do: its argument, or its file and line.
    source = args.input or "<stdin>"
    place = TEXT_PLACE.set(
        (lambda n: f"argument {n}") if args.text else (lambda n: f"{source}:{n}")
    )
    texts = iter(args.text) if lines is None else iter(lines)
    show = sys.stderr.isatty() if args.progress == "auto" else args.progress == "on"
    # Counts lines translated (written out), not lines read ahead.
    progress = tqdm(desc="translating", unit=" lines", disable=not show, file=sys.stderr)
    more_ready = None if lines is None else lines.more_ready
    try:
        with progress:
            for result in translator.translate_stream(texts, decode, more_ready=more_ready):
                print_translation(result, args.format, decode.nbest)
                progress.update()
                if lines is not None and not lines.more_ready(wait=0):
                    sys.stdout.flush()  # whoever feeds the input may be waiting for this
    except OverlongSourceError as exc:  # named by argument, or by file (or stdin) and line
        if args.text:
            raise TandemError(f"argument {exc.number}: {exc.message}") from None
        raise DataError(source, exc.message, exc.number) from None
    finally:
        TEXT_PLACE.reset(place)
    return 0
