"""Shared helpers for benchmarks: data paths, machine facts, JSON output."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
TATOEBA = SHARED_DATA / "tatoeba-eng-fra"


def require(path: Path) -> Path:
    """Exit with a clear message when a shared data set is absent."""
    if not path.exists():
        sys.exit(f"benchmark needs {path}, which is not present (see ../shared/data/README.md)")
    return path


def machine() -> dict:
    import jax
    import keras

    import tandem

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tandem": tandem.__version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
    }


def write_json(result: dict, output: str | None) -> None:
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text + "\n", encoding="utf-8")
