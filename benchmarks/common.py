"""Shared helpers for benchmarks: data paths, machine facts, JSON output."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
TATOEBA = SHARED_DATA / "tatoeba-eng-fra"


def small_attention():
    """The attention model for small data (the Tatoeba seed regime, CMUdict G2P): bi-LSTM 256,
    2 layers, dropout 0.3 between the layers only, embeddings 128, Luong general attention,
    Keras's initialisation (as the runs built on it were trained)."""
    from tandem.config import ModelConfig

    return ModelConfig(
        latent_dim=256,
        embedding_dim=128,
        bidirectional=True,
        attention="general",
        num_layers=2,
        dropout=0.3,
        embedding_dropout=0.0,
        output_dropout=0.0,
        init="keras",
    )


def add_earlier_part(result: dict, earlier: dict) -> None:
    """One training run made in several parts (`--resume`): training time and budget add up."""
    for key in ("train_seconds", "hours_budget"):
        result[key] = (earlier.get(key) or 0) + result[key]


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
        "device_kind": jax.devices()[0].device_kind,
    }


def write_json(result: dict, output: str | None) -> None:
    """Print `result` as JSON and write it to `output`; a nan or infinity becomes null."""
    text = json.dumps(_finite(result), indent=2, ensure_ascii=False, allow_nan=False)
    print(text)
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text + "\n", encoding="utf-8")


def _finite(value):
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def time_budget_callback(seconds: float):
    """A Keras callback that ends training when the next epoch would not fit in `seconds`.

    The next epoch is taken to last as long as the longest one after the first (the first
    compiles every shape, and on a GPU tunes its kernels, so it says little about the next);
    after the first epoch alone, training goes on unless the budget is already spent. A run
    therefore trains past its budget by at most one epoch's misestimate.
    """
    import time

    import keras

    class TimeBudget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()
            self.durations: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            self.durations.append(now - self.epoch_start)
            next_epoch = max(self.durations[1:], default=0.0)
            if now - self.start + next_epoch > seconds:
                print(
                    f"time budget of {seconds:.0f} s: no room for epoch {epoch + 2} "
                    f"after {now - self.start:.0f} s",
                    file=sys.stderr,
                )
                self.model.stop_training = True

    return TimeBudget()


def model_facts(model_dir: Path) -> dict:
    """Parameter count, directory size and config of a trained model directory."""
    import tandem

    translator = tandem.Translator.from_dir(model_dir)
    size = sum(p.stat().st_size for p in Path(model_dir).rglob("*") if p.is_file())
    return {
        "model_dir": str(model_dir),
        "parameters": int(translator.training_model.count_params()),
        "model_dir_mb": size / 2**20,
        "config": translator.config.to_dict(),
    }


def validation_split_for(n_train: int, n_dev: int) -> float:
    """The validation_split that makes the last `n_dev` of `n_train + n_dev` pairs the dev set."""
    return (n_dev + 0.5) / (n_train + n_dev)


def peak_rss_mb(command: list[str]) -> float:
    """Run `command` in a child of a fresh interpreter and return the child's peak RSS (MiB)."""
    import subprocess

    script = (
        "import resource, subprocess; "
        f"subprocess.run({command!r}, check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    ).stdout
    return int(out.strip().splitlines()[-1]) / 1024  # ru_maxrss is in KiB on Linux
