"""`tandem serve` under load on loopback: latency and throughput at concurrency 1, 8 and 32.

Starts the server on a model directory (default: the model `make bench-seed` trains), sends a
bounded number of one-sentence requests at each concurrency, and reports latency percentiles,
throughput, errors and the server's resident memory before and after.

    python benchmarks/bench_serve.py --output benchmarks/results/serve.json
"""

from __future__ import annotations

import argparse
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
from common import ROOT, machine, require, write_json  # noqa: E402

SENTENCES = ["Go.", "I see.", "Help me!", "We lost.", "Who is he?", "I'm tired.", "Come home."]
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


def load(http: httpx.Client, concurrency: int, requests: int) -> dict:
    """`requests` one-sentence requests, `concurrency` at a time: latencies and errors."""

    def one(number: int) -> tuple[float, bool]:
        start = time.perf_counter()
        try:
            response = http.post("/v1/translate", json={"inputs": [SENTENCES[number % 7]]})
            ok = response.status_code == 200
        except httpx.HTTPError:
            ok = False
        return (time.perf_counter() - start) * 1000, ok

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        outcomes = list(pool.map(one, range(requests)))
    seconds = time.perf_counter() - start
    latencies = np.array([ms for ms, ok in outcomes if ok])
    return {
        "requests": requests,
        "errors": sum(not ok for _, ok in outcomes),
        "p50_ms": float(np.percentile(latencies, 50)) if latencies.size else None,
        "p99_ms": float(np.percentile(latencies, 99)) if latencies.size else None,
        "throughput": len(latencies) / seconds,  # answered requests (sentences) per second
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=str(ROOT / "benchmarks" / "models" / "seed"))
    parser.add_argument("--requests", type=int, default=200, help="requests per concurrency")
    parser.add_argument("--max-wait-ms", default="5")
    parser.add_argument("--output")
    args = parser.parse_args()
    model_dir = require(Path(args.model_dir))
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
            levels = {c: load(http, c, args.requests) for c in CONCURRENCY}
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
