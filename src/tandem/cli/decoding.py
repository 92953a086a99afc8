"""The search options that translate and evaluate share, and the DecodeConfig they ask for."""

from __future__ import annotations

import argparse

from tandem.cli.options import add_options, flag_name, flag_settings, given
from tandem.config import DecodeConfig
from tandem.errors import TandemError

# The settings that only their strategy's flag makes use of: refused by name without it.
FLAG_SETTINGS = {"--sample": ("temperature", "top_k", "seed"), "--beam": ("alpha",)}


def add_decode_arguments(parser: argparse.ArgumentParser, nbest: bool = True) -> None:
    """The search options; without `nbest`, --nbest is still parsed (to be refused by name)
    but not advertised."""
    group = parser.add_argument_group("decoding")
    add_options(
        group, DecodeConfig, "beam_size", "nbest", "alpha", hidden=() if nbest else ("nbest",)
    )
    group.add_argument("--sample", action="store_true", help="sample instead of searching")
    add_options(group, DecodeConfig, "temperature", "top_k", "seed", "batch_size", "max_length")


def decode_config(args: argparse.Namespace) -> DecodeConfig:
    """The DecodeConfig the translate/evaluate flags ask for (unset flags keep its defaults)."""
    beam = given(args, DecodeConfig, "beam_size")
    if beam is not None and args.sample:
        raise TandemError("--beam and --sample are two strategies: choose one")
    chosen = {"--sample": args.sample, "--beam": beam is not None}
    for flag, names in FLAG_SETTINGS.items():
        unused = [
            flag_name(DecodeConfig, n) for n in names if given(args, DecodeConfig, n) is not None
        ]
        if unused and not chosen[flag]:
            raise TandemError(f"{', '.join(unused)}: for {flag} only, which is not chosen")
    strategy = "beam" if beam else "sample" if args.sample else None
    settings = flag_settings(args, DecodeConfig)
    return DecodeConfig(**settings, **({"strategy": strategy} if strategy else {}))
