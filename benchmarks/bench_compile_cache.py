"""Compilation cache: wall time of `tandem train` and `tandem translate` with nothing cached,
with a first run's programs on disk, and with the cache off.

Built-in demo data (2,000 pairs, no download), the default model, two epochs; then beam-5
translation of 50 sources by that model. Each round runs every setting by turns, in fresh
processes: `cold` (an empty cache directory, filled as it runs), `warm` (the directory the cold
run filled) and `off` (TANDEM_COMPILE_CACHE=off). Whole-command wall times, medians over rounds.

    python benchmarks/bench_compile_cache.py --output benchmarks/results/compile_cache.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, write_json  # noqa: E402
from tandem.data.demo_data import make_demo_pairs, write_tsv  # noqa: E402

SETTINGS = ("cold", "warm", "off")


def timed(argv: list[str], cache: str) -> float:
    """Seconds that `tandem ARGV` takes with TANDEM_COMPILE_CACHE=cache."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["TANDEM_COMPILE_CACHE"] = cache
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "tandem", *argv],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="write the JSON result here too")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    seconds: dict[str, dict[str, list[float]]] = {
        "train": {s: [] for s in SETTINGS},
        "translate": {s: [] for s in SETTINGS},
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pairs = make_demo_pairs(args.pairs)
        write_tsv(pairs, root / "data.tsv")
        (root / "sources.txt").write_text("".join(f"{s}\n" for s, _ in pairs[:50]), "utf-8")
        train = ["train", str(root / "data.tsv"), "--epochs", str(args.epochs), "-q"]
        translate = ["translate", str(root / "m-off"), "-i", str(root / "sources.txt")]
        translate += ["--beam", "5"]
        for round_ in range(args.rounds):
            cache = {"cold": str(root / f"cache-{round_}"), "off": "off"}
            cache["warm"] = cache["cold"]
            for setting in SETTINGS:
                output = ["-o", str(root / f"m-{setting}"), "--overwrite"]
                seconds["train"][setting].append(timed(train + output, cache[setting]))
            cache["cold"] = cache["warm"] = str(root / f"translate-cache-{round_}")
            for setting in SETTINGS:
                seconds["translate"][setting].append(timed(translate, cache[setting]))
            print(f"round {round_ + 1}: {seconds}", file=sys.stderr)
    medians = {
        command: {setting: statistics.median(values) for setting, values in rows.items()}
        for command, rows in seconds.items()
    }
    write_json(
        {
            "benchmark": "compile_cache",
            "command": " ".join(["python", *sys.argv]),
            "pairs": args.pairs,
            "epochs": args.epochs,
            "seconds": seconds,
            "median_seconds": medians,
            "warm_over_off": {c: m["warm"] / m["off"] for c, m in medians.items()},
            "machine": machine(),
        },
        args.output,
    )


if __name__ == "__main__":
    main()
