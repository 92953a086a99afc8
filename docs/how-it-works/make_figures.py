"""Regenerate the figures of docs/how-it-works.md from the demo's models (run `make demo` first).

    .venv/bin/python docs/how-it-works/make_figures.py [--demo runs/demo]

Runs `tandem explain` on the classic example's model and on the attention model, with the
text the page follows, and copies the figures the page shows next to this script.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from tandem.cli import main as tandem

HERE = Path(__file__).resolve().parent
TEXT = "twenty-one"
FIGURES = {  # (model, file explain writes) -> the name on the page
    ("seed", "encoder_model.svg"): "seed-encoder_model.svg",
    ("seed", "decoder_model.svg"): "seed-decoder_model.svg",
    ("seed", "explain.txt"): "seed-explain.txt",
    ("attention", "attention.png"): "attention-heatmap.png",
    ("attention", "explain.txt"): "attention-explain.txt",
}


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default="runs/demo", help="the demo's output directory")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        for model in sorted({model for model, _ in FIGURES}):
            out = Path(scratch) / model
            code = tandem(["explain", f"{args.demo}/{model}", "--text", TEXT, "-o", str(out)])
            if code:
                return code
        for (model, name), target in FIGURES.items():
            source = Path(scratch) / model / name
            if not source.exists():  # Graphviz's dot missing: no .svg
                print(
                    f"make_figures: {source.name} was not drawn (install graphviz)", file=sys.stderr
                )
                return 1
            shutil.copyfile(source, HERE / target)
            print(f"wrote {HERE / target}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
