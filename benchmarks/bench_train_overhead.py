"""Training overhead: the first epoch's compiling, with an empty and a filled compile cache, and
the time `Translator.from_dir` takes to load the model.

The configuration compared with JoeyNMT and OpenNMT-py: characters, embeddings 64, one
bidirectional LSTM layer (256 a direction), LSTM decoder 256, Luong general attention with input
feeding, Adam 1e-3, batch 64, masked padding, no label smoothing; the first 10,000 pairs of
Tatoeba eng-fra train.tsv (20% held out for validation, as `tandem train` does by default).

Each run is a fresh process (with the allocator settings `tandem` uses): `cold` with an empty
compile cache directory, which it fills; `warm` with the directory the cold run left. Epoch
times are `EpochTimer`'s (epoch begin to end, validation included), with the process's CPU
time beside them (`epoch_cpu_s`: steadier when other work shares the CPU); `setup_s` is the
time from `train()` being called to the first epoch's start (data, model, anything compiled
before `fit`).
Compiles are counted with JAX's monitoring events: every program traced, lowered and compiled
(or read back from the cache), with the seconds each took. `load_s` is the median, over fresh
processes, of one `Translator.from_dir` call, after Python, JAX, Keras and tandem are imported;
`first_translate_s` is the first greedy translation of 8 sentences after it (compiling included).
The CPU of the benchmark machine is shared: compare the ratios of one run, not raw seconds.

    python benchmarks/bench_train_overhead.py --output benchmarks/results/train_overhead.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import TATOEBA, machine, require, write_json  # noqa: E402

FLAGS = [
    "--embedding-dim", "64", "--bidirectional", "--latent-dim", "256",
    "--attention", "general", "--input-feeding", "--optimizer", "adam",
    "--learning-rate", "1e-3", "--batch-size", "64", "--label-smoothing", "0",
]  # fmt: skip
LOAD_SOURCES = ["Go.", "I won!", "Tom is here.", "We lost.", "Help me.", "Stop!", "Hi.", "Run."]


def child_environment(cache: str) -> dict[str, str]:
    from tandem.allocator import KEEP_FREED_MEMORY, with_malloc_settings

    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["TANDEM_COMPILE_CACHE"] = cache
    env.setdefault("KERAS_BACKEND", "jax")  # as tandem chooses, for imports of Keras before it
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1] / "src"), env.get("PYTHONPATH", "")]
    )
    return with_malloc_settings(env, KEEP_FREED_MEMORY)


def run_child(argv: list[str], cache: str) -> dict:
    """Run this script's child mode `argv` in a fresh process; its JSON line back."""
    done = subprocess.run(
        [sys.executable, __file__, *argv],
        env=child_environment(cache),
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


class CompileLog:
    """JAX's compile events of this process: tracing, lowering, XLA compiles, cache hits."""

    def __init__(self):
        import jax.monitoring

        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.counts: Counter = Counter()
        self.programs: dict[str, list[float]] = defaultdict(list)  # XLA compiles by name
        self.phase = "setup"
        jax.monitoring.register_event_duration_secs_listener(self._duration)
        jax.monitoring.register_event_listener(self._event)

    def _duration(self, event: str, duration: float, **kwargs) -> None:
        if event.startswith("/jax/core/compile/") or event.startswith("/jax/compilation_cache/"):
            self.seconds[f"{self.phase}:{event.rsplit('/', 1)[-1]}"].append(duration)
        if event.endswith("/backend_compile_duration") and self.phase != "setup":
            self.programs[f"{self.phase}:{kwargs.get('fun_name')}"].append(round(duration, 2))

    def _event(self, event: str, **kwargs) -> None:
        if event.startswith("/jax/compilation_cache/"):
            self.counts[f"{self.phase}:{event.rsplit('/', 1)[-1]}"] += 1

    def summary(self) -> dict:
        return {
            "events": dict(self.counts),
            "count": {key: len(values) for key, values in self.seconds.items()},
            "seconds": {key: round(sum(values), 3) for key, values in self.seconds.items()},
            "programs": dict(self.programs),  # seconds of each compile (or cache read)
        }


def child_train(data: str, pairs: int, epochs: int, output: str) -> dict:
    """One training run in this process, timed epoch by epoch."""
    import keras

    from tandem import compile_cache
    from tandem.cli.parser import build_parser, parse_args
    from tandem.cli.train import train_config
    from tandem.data.reading import read_pairs
    from tandem.training import train

    compile_cache.enable()
    log = CompileLog()
    argv = ["train", data, "-o", output, "--max-samples", str(pairs), "--epochs", str(epochs)]
    config = train_config(parse_args(build_parser(), [*argv, *FLAGS]))
    read = read_pairs(data, None, max_samples=config.data.max_samples)
    marks: dict[str, float] = {}
    cpu_seconds: list[float] = []  # the process's CPU time (all threads) in each epoch

    class Marks(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            marks.setdefault("fit", time.perf_counter())
            marks["cpu"] = time.process_time()
            log.phase = f"epoch{epoch + 1}"

        def on_epoch_end(self, epoch, logs=None):
            cpu_seconds.append(time.process_time() - marks["cpu"])

    start = time.perf_counter()
    result = train(read.pairs, config, output, callbacks=[Marks()], verbose=0)
    return {
        "epoch_s": [row["seconds"] for row in result.history],
        "epoch_cpu_s": cpu_seconds,
        "setup_s": marks["fit"] - start,
        "total_s": time.perf_counter() - start,
        "train_pairs": result.train_pairs,
        "validation_pairs": result.validation_pairs,
        "compiles": log.summary(),
    }


def child_load(model_dir: str) -> dict:
    """One `Translator.from_dir` in this process, its imports done first."""
    import jax  # noqa: F401
    import keras  # noqa: F401

    from tandem import compile_cache
    from tandem.translator import Translator

    compile_cache.enable()
    start = time.perf_counter()
    translator = Translator.from_dir(model_dir)
    loaded = time.perf_counter()
    texts = translator.translate(LOAD_SOURCES)
    return {
        "load_s": loaded - start,
        "first_translate_s": time.perf_counter() - loaded,
        "translations": texts,
    }


def ratios(run: dict) -> dict:
    later = statistics.median(run["epoch_s"][1:])
    later_cpu = statistics.median(run["epoch_cpu_s"][1:])
    return {
        "first_epoch_s": run["epoch_s"][0],
        "later_epoch_s": later,
        "first_over_later": run["epoch_s"][0] / later,
        "setup_and_first_over_later": (run["setup_s"] + run["epoch_s"][0]) / later,
        # CPU time is less disturbed than wall time by other work on a shared machine.
        "first_over_later_cpu": run["epoch_cpu_s"][0] / later_cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="write the JSON result here too")
    parser.add_argument("--data", default=str(TATOEBA / "train.tsv"))
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=3, help="at least 2: first and later")
    parser.add_argument("--loads", type=int, default=5, help="fresh processes timing the load")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "train":
            print(json.dumps(child_train(args.data, args.pairs, args.epochs, rest[0])))
        else:
            print(json.dumps(child_load(rest[0])))
        return
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (a first epoch and a later one)")
    require(Path(args.data))
    common = ["--data", args.data, "--pairs", str(args.pairs), "--epochs", str(args.epochs)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cache = str(root / "cache")
        runs = {}
        for setting in ("cold", "warm"):
            model = str(root / f"model-{setting}")
            runs[setting] = run_child([*common, "--child", "train", model], cache)
            print(f"{setting}: {json.dumps(runs[setting])}", file=sys.stderr)
        loads = [
            run_child(["--child", "load", str(root / "model-warm")], cache)
            for _ in range(args.loads)
        ]
    cold, warm = ratios(runs["cold"]), ratios(runs["warm"])
    write_json(
        {
            "benchmark": "train_overhead",
            "command": " ".join(["python", *sys.argv]),
            "data": f"first {args.pairs} lines of {Path(args.data).name}",
            "flags": " ".join(FLAGS),
            "epochs": args.epochs,
            "first_epoch_s_cold": cold["first_epoch_s"],
            "first_epoch_s_warm": warm["first_epoch_s"],
            "later_epoch_s": statistics.median(runs["cold"]["epoch_s"][1:]),
            "later_epoch_s_warm_run": warm["later_epoch_s"],
            "cold_first_over_later": cold["first_over_later"],
            "warm_first_over_later": warm["first_over_later"],
            "cold_first_over_later_cpu": cold["first_over_later_cpu"],
            "warm_first_over_later_cpu": warm["first_over_later_cpu"],
            "cold": {**cold, **runs["cold"]},
            "warm": {**warm, **runs["warm"]},
            "load_s": statistics.median(row["load_s"] for row in loads),
            "load_s_all": [row["load_s"] for row in loads],
            "first_translate_s": statistics.median(row["first_translate_s"] for row in loads),
            "translations": loads[0]["translations"],
            "machine": machine(),
        },
        args.output,
    )


if __name__ == "__main__":
    main()
