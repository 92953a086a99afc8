"""ONNX export of the seed-regime attention model: export time, size, speed and agreement.

Needs the model that `make bench-tatoeba` trains (benchmarks/models/tatoeba/seed-regime) and
the Tatoeba test set. In one run: `tandem export` of the model, then greedy and beam-5
sentences/s of the ONNX Runtime loop (`tandem.runtime`) against tandem's compiled decoding on
the same sources, how many outputs agree, the export's size on disk, and the peak memory of a
process that only loads the runtime and translates (and of one that does so with tandem).

    python benchmarks/bench_export.py --output benchmarks/results/export.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tandem  # noqa: E402, F401 - chooses the Keras backend before common.machine imports Keras
from common import ROOT, TATOEBA, machine, require, write_json  # noqa: E402
from tandem.data.reading import group_references, read_pairs  # noqa: E402

MODEL = ROOT / "benchmarks" / "models" / "tatoeba" / "seed-regime"
STRATEGIES = {"greedy": {}, "beam-5": {"strategy": "beam", "beam_size": 5}}
# A process that loads a translator and translates two sentences; prints its peak RSS (MiB).
MEMORY_SCRIPT = """
import sys
if sys.argv[1] == "runtime":
    from tandem.runtime import OnnxTranslator as T
    translator = T(sys.argv[2])
else:
    from tandem import Translator as T
    translator = T.from_dir(sys.argv[2])
translator.translate(["Go.", "I see."])
# VmHWM, not ru_maxrss: a child's ru_maxrss starts from its parent's at the fork.
status = open("/proc/self/status").read().split("VmHWM:")[1]
print(int(status.split()[0]) / 1024)
"""


def timed(fn) -> tuple[object, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def peak_memory_mb(kind: str, path: Path) -> float:
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, kind, str(path)],
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    return round(float(done.stdout.split()[-1]), 1)


def compare(translator, runtime, sources: list[str], options: dict) -> dict:
    """Both decoders on `sources`, each once to warm up (tandem compiles) and once timed."""
    runtime_options = {k: v for k, v in options.items() if k != "strategy"}
    strategy = options.get("strategy", "greedy")
    _, tandem_first = timed(lambda: translator.translate(sources, **options))
    expected, tandem_seconds = timed(lambda: translator.translate(sources, **options))
    _, runtime_first = timed(lambda: runtime.translate(sources, strategy, **runtime_options))
    got, runtime_seconds = timed(lambda: runtime.translate(sources, strategy, **runtime_options))
    differ = [i for i, (a, b) in enumerate(zip(expected, got, strict=True)) if a != b]
    return {
        "tandem_sentences_per_s": round(len(sources) / tandem_seconds, 1),
        "runtime_sentences_per_s": round(len(sources) / runtime_seconds, 1),
        "runtime_over_tandem": round(tandem_seconds / runtime_seconds, 3),
        "tandem_first_pass_s": round(tandem_first, 2),
        "runtime_first_pass_s": round(runtime_first, 2),
        "agree": len(sources) - len(differ),
        "differ": len(differ),
        "first_differences": [
            {"source": sources[i], "tandem": expected[i], "runtime": got[i]} for i in differ[:5]
        ],
    }


def _shown(path: Path) -> str:
    """A path from the repository's root (benchmarks/...) where it lies under one."""
    parts = path.resolve().parts
    return "/".join(parts[parts.index("benchmarks") :]) if "benchmarks" in parts else str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--data", type=Path, default=TATOEBA / "test.tsv")
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--output")
    args = parser.parse_args()
    require(args.model / "model.keras")
    require(args.data)

    from tandem import Translator
    from tandem.errors import OverlongSourceWarning
    from tandem.export import export_model
    from tandem.runtime import OnnxTranslator

    warnings.simplefilter("ignore", OverlongSourceWarning)  # truncated alike by both
    sources = [s for s, _ in group_references(read_pairs(args.data).pairs)][: args.sentences]
    with tempfile.TemporaryDirectory(prefix="tandem-bench-export-") as scratch:
        output = Path(scratch) / "export"
        manifest, export_seconds = timed(lambda: export_model(args.model, output))
        sizes = {p.name: p.stat().st_size for p in sorted(output.iterdir())}
        translator = Translator.from_dir(args.model)
        runtime = OnnxTranslator(output)
        results = {name: compare(translator, runtime, sources, o) for name, o in STRATEGIES.items()}
        memory = {
            "runtime_peak_rss_mb": peak_memory_mb("runtime", output),
            "tandem_peak_rss_mb": peak_memory_mb("tandem", args.model),
        }
    write_json(
        {
            "benchmark": "export",
            "command": " ".join(["python", "benchmarks/bench_export.py", *sys.argv[1:]]),
            "model": _shown(args.model),
            "model_created": json.loads((args.model / "manifest.json").read_text())["created"],
            "data": args.data.name,
            "sentences": len(sources),
            "export_seconds": round(export_seconds, 1),
            "export_bytes": sum(sizes.values()),
            "file_bytes": sizes,
            "agreement_check": manifest["agreement"],
            "versions": manifest["versions"],
            "opset": manifest["opset"],
            **results,
            **memory,
            "machine": machine(),
        },
        args.output,
    )


if __name__ == "__main__":
    main()
