"""The argument parser: one subparser per subcommand module."""

from __future__ import annotations

import argparse

from tandem import __version__
from tandem.cli import average, evaluate, explain, export, serve, train, translate

_DASHES = "\0--"  # stands for a literal `--` among translate's texts while argparse parses


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tandem", description="Sequence-to-sequence learning in Keras 3."
    )
    parser.add_argument("--version", action="version", version=f"tandem {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.subcommands = commands.choices  # name -> parser (see parse_args)
    for command in (train, translate, evaluate, average, explain, serve, export):
        command.add_parser(commands)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """`parser.parse_args`, except that translate's texts and options may come in any order.

    argparse gives translate's texts (a `*` positional after the model directory) nothing as
    soon as an option comes between them (`translate M --beam 2 "Go."`), and then refuses the
    texts; parsed intermixed, options and texts mix as they do in other commands.
    """
    if argv[:1] == ["translate"]:
        rest = argv[1:]
        if "--" in rest:
            # Everything after the first `--` is a text, `--` included; argparse would drop
            # every later `--` and so misalign the outputs. A command line never holds NUL.
            end = rest.index("--") + 1
            rest = rest[:end] + [_DASHES if arg == "--" else arg for arg in rest[end:]]
        args = parser.subcommands["translate"].parse_intermixed_args(rest)
        args.model_dir = "--" if args.model_dir == _DASHES else args.model_dir
        args.text = ["--" if text == _DASHES else text for text in args.text]
        args.command = "translate"
    else:
        args = parser.parse_args(argv)
    args.argv = argv
    return args
