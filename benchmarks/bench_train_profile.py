"""Where the compiled training step's time goes, by kind of XLA operation, and what the kernel adds.

Trains the seed architecture (one-hot inputs, one LSTM per side, latent 256, padding masked,
rmsprop, as `tandem train` compiles it) on one batch of B pairs with S source and T target steps
(by default the seed data's typical bucket: 256, 16, 24), profiles a few steps with JAX's
profiler, and sums the time of the operations the step ran, over both of XLA's CPU threads,
by kind: matrix products (YNNPACK fusions), the loops' stores of per-step arrays
(dynamic-update-slice), fills of new buffers (broadcast), copies and transposes, and the
elementwise fusions. It also counts the minor page faults and the user and system CPU time per
step: glibc's allocator hands XLA's larger buffers back to the kernel when they are freed, so
the next step faults their pages in again. Each measurement runs in a fresh process, by turns
with the default allocator and with `KEEP_FREED_MEMORY` (glibc settings that keep freed memory
in the process), so the two are compared under the same load.

    python benchmarks/bench_train_profile.py --output benchmarks/results/train_profile.json
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tandem  # noqa: E402, F401, I001  (sets the Keras backend before Keras is imported)
import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import machine, write_json  # noqa: E402
from tandem.allocator import KEEP_FREED_MEMORY, with_malloc_settings  # noqa: E402
from tandem.config import ModelConfig  # noqa: E402
from tandem.models import ModelDims, build_model  # noqa: E402

# The seed data's vocabulary sizes (source, target) and longest sequences.
DIMS = ModelDims(72, 95, 16, 59)

# Operation kinds, by the start of XLA's names for them; the rest is elementwise work.
KINDS = (
    ("ynn_fusion", "matrix products"),
    ("dot", "matrix products"),
    ("bitcast_dynamic-update-slice", "per-step stores (dynamic-update-slice)"),
    ("dynamic-update-slice", "per-step stores (dynamic-update-slice)"),
    ("wrapped_broadcast", "fills of new buffers (broadcast)"),
    ("copy", "copies and transposes"),
    ("wrapped_copy", "copies and transposes"),
    ("bitcast_transpose", "copies and transposes"),
    ("convert_transpose", "copies and transposes"),
    ("concatenate", "concatenations"),
    ("while", "loop control"),
)
# Spans that contain other spans, or are not operations of the step.
CONTAINERS = ("ThunkExecutor", "SlinkyThreadPool", "PjitFunction", "CommonPjRt", "end: ", "$")


def kind_of(name: str) -> str:
    for prefix, kind in KINDS:
        if name.startswith(prefix):
            return kind
    return "elementwise fusions"


def op_times(trace_dir: Path) -> collections.Counter:
    """Microseconds per operation name, summed over threads, from the profiler's trace."""
    trace = next(trace_dir.rglob("perfetto_trace.json.gz"))
    events = json.loads(gzip.decompress(trace.read_bytes()))
    events = events["traceEvents"] if isinstance(events, dict) else events
    times = collections.Counter()
    for event in events:
        name = event.get("name", "")
        if event.get("ph") == "X" and not name.startswith(CONTAINERS):
            times[re.sub(r"\.\d+$", "", name)] += event.get("dur", 0)
    return times


def measure(args) -> dict:
    """One process's figures (the child's work)."""
    batch, source_steps, target_steps = args.batch_size, args.source_steps, args.target_steps

    rng = np.random.default_rng(0)
    source = rng.integers(4, DIMS.num_encoder_tokens, (batch, source_steps)).astype("int32")
    decoder = rng.integers(4, DIMS.num_decoder_tokens, (batch, target_steps)).astype("int32")
    decoder[:, target_steps * 5 // 6 :] = 0  # padding at the end, as a bucket has
    targets = rng.integers(4, DIMS.num_decoder_tokens, (batch, target_steps)).astype("int32")
    weights = (decoder != 0).astype("float32")
    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(inputs="one_hot"), DIMS).fit_model
    model.compile(
        optimizer="rmsprop", loss="sparse_categorical_crossentropy", weighted_metrics=["accuracy"]
    )

    def step():
        model.train_on_batch([source, decoder], targets, sample_weight=weights)

    for _ in range(3):  # compiles, then settles
        step()
    before, times = resource.getrusage(resource.RUSAGE_SELF), []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF)

    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            for _ in range(args.profiled_steps):
                step()
        ops = op_times(Path(tmp))
    by_kind = collections.Counter()
    for name, microseconds in ops.items():
        by_kind[kind_of(name)] += microseconds / 1e3 / args.profiled_steps
    total = sum(by_kind.values())
    return {
        "step_ms_median": float(np.median(times)) * 1e3,
        "step_ms_best": min(times) * 1e3,
        "minor_page_faults_per_step": (after.ru_minflt - before.ru_minflt) / args.steps,
        "user_cpu_ms_per_step": (after.ru_utime - before.ru_utime) * 1e3 / args.steps,
        "system_cpu_ms_per_step": (after.ru_stime - before.ru_stime) * 1e3 / args.steps,
        "op_ms_per_step_both_threads": total,
        "op_ms_per_step_by_kind": dict(by_kind.most_common()),
        "op_share_by_kind": {k: v / total for k, v in by_kind.most_common()},
        "top_ops_ms_per_step": {
            name: microseconds / 1e3 / args.profiled_steps
            for name, microseconds in ops.most_common(12)
        },
    }


def median_of(runs: list[dict], key: str) -> float:
    return float(np.median([run[key] for run in runs]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="write the JSON result here too")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--source-steps", type=int, default=16)
    parser.add_argument("--target-steps", type=int, default=24)
    parser.add_argument("--steps", type=int, default=12, help="timed steps per process")
    parser.add_argument("--profiled-steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="processes per allocator setting")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    child = [sys.executable, __file__, "--child", *sys.argv[1:]]
    if "--output" in child:  # only the parent writes
        at = child.index("--output")
        del child[at : at + 2]
    settings = {"default": {}, "keep_freed_memory": KEEP_FREED_MEMORY}
    runs = {name: [] for name in settings}
    for _ in range(args.rounds):
        for name, extra in settings.items():
            environment = with_malloc_settings(os.environ, extra)
            done = subprocess.run(
                child, env=environment, capture_output=True, text=True, check=True
            )
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    keys = (
        "step_ms_median",
        "minor_page_faults_per_step",
        "user_cpu_ms_per_step",
        "system_cpu_ms_per_step",
        "op_ms_per_step_both_threads",
    )
    write_json(
        {
            "benchmark": "train_profile",
            "command": " ".join(["python", *sys.argv]),
            "batch_size": args.batch_size,
            "source_steps": args.source_steps,
            "target_steps": args.target_steps,
            "keep_freed_memory_env": KEEP_FREED_MEMORY,
            "summary": {
                name: {key: median_of(rs, key) for key in keys} for name, rs in runs.items()
            },
            "runs": runs,
            "machine": machine(),
        },
        args.output,
    )


if __name__ == "__main__":
    main()
