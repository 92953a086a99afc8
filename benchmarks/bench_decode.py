"""Decoding speed and quality on the seed-regime model: greedy, beam-5, the example's loop.

Needs the model that `make bench-seed` trains (benchmarks/models/seed). In one run: the example's
one-predict-per-character loop, tandem's compiled greedy and beam-5 decoding on the same weights,
the machine's float32 matmul rate, and peak memory of streaming a 100,000-line file.

    python benchmarks/bench_decode.py --output benchmarks/results/decode.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import tandem  # noqa: E402
from baseline import translate_one_by_one  # noqa: E402
from common import ROOT, TATOEBA, machine, peak_rss_mb, require, write_json  # noqa: E402
from tandem.config import DecodeConfig  # noqa: E402
from tandem.data.reading import group_references, read_pairs  # noqa: E402
from tandem.data.vocabulary import END_ID  # noqa: E402
from tandem.evaluation import score  # noqa: E402


def matmul_rate(size: int = 2048, repeats: int = 5) -> float:
    """Best float32 FLOP/s of a size x size matmul with the Keras backend, compiled."""
    import jax
    import jax.numpy as jnp

    a = jnp.asarray(np.random.default_rng(0).standard_normal((size, size), np.float32))
    matmul = jax.jit(jnp.matmul)
    matmul(a, a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def useful_flops(translator, sources, translations_ids) -> float:
    """2*4*H*H per source token; 2*4*H*H + 2*H*V per generated token up to its end token."""
    hidden = translator.config.model.latent_dim
    vocab = len(translator.target_vocab)
    source_tokens = sum(
        min(len(translator.source_vocab.tokenize(s)), translator.max_source_length) for s in sources
    )
    generated = sum(_generated_length(ids) for ids in translations_ids)
    return source_tokens * 2 * 4 * hidden * hidden + generated * (
        2 * 4 * hidden * hidden + 2 * hidden * vocab
    )


def _generated_length(ids) -> int:
    ids = list(ids)
    return ids.index(END_ID) + 1 if END_ID in ids else len(ids)


def timed(fn, repeats: int = 3):
    """Best wall time of `repeats` calls (after one warm-up call), and the last result."""
    result = fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def stream_peak_rss_mb(model_dir: Path, lines: int, sources: list[str]) -> float:
    """Peak RSS of `tandem translate` streaming a file of `lines` lines, in its own process."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.txt"
        with open(path, "w", encoding="utf-8") as handle:
            for i in range(lines):
                handle.write(sources[i % len(sources)] + "\n")
        command = [
            sys.executable,
            "-m",
            "tandem",
            "translate",
            str(model_dir),
            "-i",
            str(path),
            "--batch-size",
            "256",
            "--progress",
            "off",
        ]
        return peak_rss_mb(command)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="write the JSON result here too")
    parser.add_argument("--model-dir", default=str(ROOT / "benchmarks/models/seed"))
    parser.add_argument("--stream-lines", type=int, default=100_000)
    args = parser.parse_args()
    test_path = require(TATOEBA / "test.tsv")
    model_dir = Path(args.model_dir)
    if not (model_dir / "manifest.json").exists():
        sys.exit(f"{model_dir}: no trained seed model; run `make bench-seed` first")

    translator = tandem.Translator.from_dir(model_dir)
    grouped = group_references(read_pairs(test_path).pairs)
    eligible = [(s, refs) for s, refs in grouped if translator.is_within_training_range(s)]
    sources = [s for s, _ in eligible]
    references = [refs for _, refs in eligible]
    n = len(sources)

    translate_one_by_one(translator, sources[:2])  # warm up predict()
    start = time.perf_counter()
    translate_one_by_one(translator, sources)
    baseline_seconds = time.perf_counter() - start

    greedy_runs = {}
    for batch_size in (32, 48, 64, 128, 256):
        decode = DecodeConfig(batch_size=batch_size)
        seconds, texts = timed(lambda d=decode: translator.translate(sources, d))
        greedy_runs[batch_size] = {"seconds": seconds, "sentences_per_s": n / seconds}
    best_batch = min(greedy_runs, key=lambda b: greedy_runs[b]["seconds"])
    greedy_seconds = greedy_runs[best_batch]["seconds"]
    greedy = translator.translate(sources, DecodeConfig(batch_size=best_batch))

    beam_runs = {}
    for batch_size in (32, 64, 128):
        decode = DecodeConfig(strategy="beam", beam_size=5, batch_size=batch_size)
        seconds, texts = timed(lambda d=decode: translator.translate(sources, d), repeats=2)
        beam_runs[batch_size] = {"seconds": seconds, "sentences_per_s": n / seconds}
    best_beam_batch = min(beam_runs, key=lambda b: beam_runs[b]["seconds"])
    beam_seconds = beam_runs[best_beam_batch]["seconds"]
    beam = translator.translate(sources, DecodeConfig(strategy="beam", batch_size=best_beam_batch))

    rate = matmul_rate()
    ids = [translator.target_vocab.encode(t, add_end=True) for t in greedy]
    flops = useful_flops(translator, sources, ids)
    greedy_scores = score(greedy, references)
    beam_scores = score(beam, references)

    small = stream_peak_rss_mb(model_dir, args.stream_lines // 10, sources)
    large = stream_peak_rss_mb(model_dir, args.stream_lines, sources)
    result = {
        "benchmark": "decode",
        "command": "make bench-decode",
        "model_dir": str(model_dir),
        "n_sources": n,
        "baseline_sentences_per_s": n / baseline_seconds,
        "greedy_sentences_per_s": n / greedy_seconds,
        "beam5_sentences_per_s": n / beam_seconds,
        "greedy_speedup": baseline_seconds / greedy_seconds,
        "beam5_speedup": baseline_seconds / beam_seconds,
        "greedy_batch_size": best_batch,
        "beam5_batch_size": best_beam_batch,
        "greedy_by_batch_size": greedy_runs,
        "beam5_by_batch_size": beam_runs,
        "matmul_flops_per_s": rate,
        "greedy_useful_flops": flops,
        "greedy_useful_flops_per_s": flops / greedy_seconds,
        "matmul_fraction": flops / greedy_seconds / rate,
        "greedy_chrf": greedy_scores["chrf"],
        "greedy_bleu": greedy_scores["bleu"],
        "beam5_chrf": beam_scores["chrf"],
        "beam5_bleu": beam_scores["bleu"],
        "signatures": greedy_scores["signatures"],
        "stream_lines": args.stream_lines,
        "stream_peak_rss_mb": large,
        "stream_peak_rss_mb_tenth": small,
        "stream_rss_growth_mb": large - small,
        "machine": machine(),
    }
    write_json(result, args.output)


if __name__ == "__main__":
    main()
