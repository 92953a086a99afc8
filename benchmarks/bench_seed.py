"""Seed regime: the example's model and settings, its decoding loop vs tandem's batched greedy.

Trains on the first 10,000 lines of Tatoeba train.tsv with the example's settings (latent 256,
rmsprop, batch 64, 100 epochs, validation split 0.2), then decodes every eligible test.tsv
source with both decoders on the same weights and scores tandem's output with all references.

    python benchmarks/bench_seed.py --output benchmarks/results/seed.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tandem  # noqa: E402  (sets the Keras backend)
from baseline import translate_one_by_one  # noqa: E402
from common import ROOT, TATOEBA, machine, require, write_json  # noqa: E402
from tandem.config import Config  # noqa: E402
from tandem.data.reading import group_references, read_pairs  # noqa: E402
from tandem.evaluation import score  # noqa: E402
from tandem.model_dir import read_history  # noqa: E402
from tandem.training import train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="write the JSON result here too")
    parser.add_argument("--model-dir", default=str(ROOT / "benchmarks/models/seed"))
    parser.add_argument("--reuse", action="store_true", help="reuse a trained --model-dir")
    parser.add_argument("--epochs", type=int, help="default: the recipe's (configs/seed.json)")
    parser.add_argument("--samples", type=int, help="default: the recipe's")
    parser.add_argument("--batch-size", type=int, default=256, help="tandem decoding batch")
    args = parser.parse_args()
    train_path = require(TATOEBA / "train.tsv")
    test_path = require(TATOEBA / "test.tsv")

    model_dir = Path(args.model_dir)
    if not args.reuse:
        config = Config.load(ROOT / "configs" / "seed.json")  # the recipe
        config = config.replace("data", max_samples=args.samples)
        config = config.replace("train", epochs=args.epochs)
        pairs = read_pairs(train_path, max_samples=config.data.max_samples).pairs
        train(pairs, config, model_dir, overwrite=True)  # the benchmark's own directory
    history = read_history(model_dir / "history.csv")

    translator = tandem.Translator.from_dir(model_dir)
    grouped = group_references(read_pairs(test_path).pairs)
    eligible = [(s, refs) for s, refs in grouped if translator.is_within_training_range(s)]
    sources = [s for s, _ in eligible]
    references = [refs for _, refs in eligible]

    start = time.perf_counter()
    translator.translate(sources[: args.batch_size], batch_size=args.batch_size)  # compile
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    greedy = translator.translate(sources, batch_size=args.batch_size)
    greedy_seconds = time.perf_counter() - start

    translate_one_by_one(translator, sources[:2])  # warm up predict()
    start = time.perf_counter()
    baseline = translate_one_by_one(translator, sources)
    baseline_seconds = time.perf_counter() - start

    scores = score(greedy, references)
    baseline_scores = score(baseline, references)
    result = {
        "benchmark": "seed",
        "command": "make bench-seed",
        "n_sources": len(sources),
        "train_samples": args.samples,
        "epochs": len(history),
        "seconds_per_epoch": sum(row["seconds"] for row in history) / len(history),
        "final_val_loss": history[-1].get("val_loss"),
        "baseline_sentences_per_s": len(sources) / baseline_seconds,
        "greedy_sentences_per_s": len(sources) / greedy_seconds,
        "speedup": baseline_seconds / greedy_seconds,
        "greedy_compile_seconds": compile_seconds,
        "greedy_batch_size": args.batch_size,
        "chrf": scores["chrf"],
        "bleu": scores["bleu"],
        "exact_match": scores["exact_match"],
        "baseline_chrf": baseline_scores["chrf"],
        "outputs_identical_fraction": sum(a == b for a, b in zip(greedy, baseline, strict=True))
        / len(sources),
        "signatures": scores["signatures"],
        "model_dir": str(model_dir),
        "examples": [
            {"source": s, "greedy": g, "baseline": b}
            for s, g, b in list(zip(sources, greedy, baseline, strict=True))[:5]
        ],
        "machine": machine(),
    }
    write_json(result, args.output)


if __name__ == "__main__":
    main()
