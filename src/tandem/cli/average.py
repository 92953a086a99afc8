"""`tandem average`: make a model the mean of its last epochs' weights."""

from __future__ import annotations

import argparse
import sys


def add_parser(commands) -> None:
    average = commands.add_parser(
        "average",
        help="save the mean of the last N epochs' weights (snapshots kept by --average-last)",
    )
    average.add_argument("model_dir", help="model directory written by tandem train")
    average.add_argument(
        "--last",
        type=int,
        required=True,
        metavar="N",
        help="average the N epochs ending at the kept one (the best with --patience, else "
        "the last); 1 restores that epoch alone",
    )
    average.add_argument(
        "--epoch",
        type=int,
        metavar="E",
        help="end the window at epoch E instead (its snapshot kept by --keep-checkpoints); "
        "--last 1 --epoch E goes back to epoch E",
    )
    average.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tandem.training import average_model_dir

    epochs = average_model_dir(args.model_dir, args.last, args.epoch)
    which = f"epoch {epochs[0]}" if len(epochs) == 1 else f"epochs {', '.join(map(str, epochs))}"
    print(f"{args.model_dir}: the model is now the mean of {which}", file=sys.stderr)
    return 0
