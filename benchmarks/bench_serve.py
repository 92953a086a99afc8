"""`tandem serve` under load on loopback: latency and throughput at concurrency 1, 8 and 32.

Starts the server on a model directory (default: the seed-regime attention model that
`make bench-tatoeba` trains), sends one-sentence requests at each concurrency (1,000 per level
by default), the sentences drawn from the Tatoeba eng-fra dev and test sources, and reports
latency percentiles, throughput, errors and the server's resident memory before and after.

    python benchmarks/bench_serve.py --output benchmarks/results/serve.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

import tandem  # noqa: E402, F401 - chooses the Keras backend before common.machine imports Keras
from common import ROOT, TATOEBA, machine, require, write_json  # noqa: E402

MODEL_DIR = ROOT / "benchmarks" / "models" / "tatoeba" / "seed-regime"
CONCURRENCY = (1, 8, 32)
STARTUP_TIMEOUT_S = 300.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_ready(http: httpx.Client, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited with {server.returncode} before it was ready")
        try:
            if http.get("/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    sys.exit(f"the server was not ready within {STARTUP_TIMEOUT_S} s")


def sentences(data: Path, count: int, seed: int = 0) -> list[str]:
    """`count` sources drawn (with a fixed seed) from the dev and test files' distinct ones."""
    sources = sorted(
        {
            line.split("\t", 1)[0]
            for name in ("dev.tsv", "test.tsv")
            for line in (data / name).read_text(encoding="utf-8").splitlines()
            if "\t" in line
        }
    )
    rng = np.random.default_rng(seed)
    return [sources[i] for i in rng.integers(0, len(sources), count)]


def model_ready(model_dir: Path) -> str | None:
    """Why `model_dir` cannot be served yet, or None."""
    if not (model_dir / "config.json").is_file() or not (model_dir / "model.keras").is_file():
        return f"no trained model in {model_dir} (make bench-tatoeba trains it)"
    manifest = json.loads((model_dir / "manifest.json").read_text())
    if manifest.get("complete") is not True:
        return f"{model_dir} is still being trained"
    return None


def load(http: httpx.Client, concurrency: int, texts: list[str]) -> dict:
    """One one-sentence request per text, `concurrency` at a time: latencies and errors."""

    def one(text: str) -> tuple[float, bool]:
        start = time.perf_counter()
        try:
            response = http.post("/v1/translate", json={"inputs": [text]})
            ok = response.status_code == 200
        except httpx.HTTPError:
            ok = False
        return (time.perf_counter() - start) * 1000, ok

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        outcomes = list(pool.map(one, texts))
    seconds = time.perf_counter() - start
    latencies = np.array([ms for ms, ok in outcomes if ok])
    return {
        "requests": len(texts),
        "errors": sum(not ok for _, ok in outcomes),
        "p50_ms": float(np.percentile(latencies, 50)) if latencies.size else None,
        "p99_ms": float(np.percentile(latencies, 99)) if latencies.size else None,
        "throughput": len(latencies) / seconds,  # answered requests (sentences) per second
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=str(MODEL_DIR))
    parser.add_argument("--requests", type=int, default=1000, help="requests per concurrency")
    parser.add_argument("--max-wait-ms", default="0")
    parser.add_argument("--output")
    args = parser.parse_args()
    model_dir = Path(args.model_dir)
    if reason := model_ready(model_dir):
        sys.exit(f"bench-serve skipped: {reason}")
    texts = sentences(require(TATOEBA), args.requests * len(CONCURRENCY))
    port = free_port()
    command = [sys.executable, "-m", "tandem", "serve", str(model_dir), "--port", str(port)]
    command += ["--max-wait-ms", args.max_wait_ms, "--max-queue", "1024"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        limits = httpx.Limits(max_connections=64)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits) as http:
            wait_ready(http, server)
            rss_before = rss_mb(server.pid)
            http.post("/v1/translate", json={"inputs": texts[:1]})  # the connection opened
            levels = {
                c: load(http, c, texts[level * args.requests : (level + 1) * args.requests])
                for level, c in enumerate(CONCURRENCY)
            }
            rss_after = rss_mb(server.pid)
        server.send_signal(signal.SIGTERM)
        exit_code = server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    result = {
        "command": " ".join(sys.argv),
        "model_dir": str(model_dir),
        "max_wait_ms": float(args.max_wait_ms),
        "requests_per_level": args.requests,
        "sentences": f"{TATOEBA.name} dev and test sources, drawn with seed 0",
        "errors": sum(level["errors"] for level in levels.values()),
        "p50_ms_c1": levels[1]["p50_ms"],
        "p99_ms_c1": levels[1]["p99_ms"],
        "throughput_c1": levels[1]["throughput"],
        "throughput_c8": levels[8]["throughput"],
        "throughput_c32": levels[32]["throughput"],
        "rss_mb_before": rss_before,
        "rss_mb_after": rss_after,
        "server_exit_code": exit_code,
        "levels": {str(c): level for c, level in levels.items()},
        "machine": machine(),
    }
    write_json(result, args.output)


if __name__ == "__main__":
    main()
