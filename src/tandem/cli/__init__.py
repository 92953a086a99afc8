"""Command line: small subcommands, each calling one library function and returning an exit code.

One module per subcommand (`train`, `translate`, `evaluate`, `average`); `program.main` is the
entry point, `options` turns the flags declared on the config fields into argparse options.
"""

from tandem.cli.parser import build_parser, parse_args
from tandem.cli.program import main
from tandem.cli.train import resume_command, train_config

__all__ = ["build_parser", "main", "parse_args", "resume_command", "train_config"]
