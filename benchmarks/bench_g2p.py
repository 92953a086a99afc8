"""Grapheme-to-phoneme on the standard CMUdict split: word and phoneme error rates.

Dev words are carved from train.tsv by word (fixed seed); test.tsv is scored once with every
accepted pronunciation. Characters in, phoneme words out.

    python benchmarks/bench_g2p.py --average-last 5 --output benchmarks/results/g2p.json [--hours 3]
    python benchmarks/bench_g2p.py --output benchmarks/results/g2p.json --resume --hours 1
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tandem  # noqa: E402
from common import (  # noqa: E402
    ROOT,
    SHARED_DATA,
    add_earlier_part,
    machine,
    model_facts,
    require,
    time_budget_callback,
    validation_split_for,
    write_json,
)
from tandem.config import Config, DecodeConfig  # noqa: E402
from tandem.data.reading import group_references, read_pairs  # noqa: E402
from tandem.evaluation import error_rates  # noqa: E402
from tandem.training import train  # noqa: E402

CMUDICT = SHARED_DATA / "cmudict-g014b2b"
RECIPE = ROOT / "configs" / "g2p.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="write the JSON result here too")
    parser.add_argument("--model-dir", default=str(ROOT / "benchmarks/models/g2p"))
    parser.add_argument("--hours", type=float, default=3.0, help="training time budget")
    parser.add_argument("--dev-words", type=int, default=2000)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="score an already trained model")
    parser.add_argument(
        "--average-last",
        type=int,
        metavar="N",
        help="save the mean of the weights of the last N epochs up to the best (default: the "
        "recipe's; may be switched on when resuming: epochs trained without it are left out of the mean)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --model-dir from its last checkpoint (interrupted, or stopped "
        "by its time budget: --hours is then this part's budget); with an earlier --output, "
        "the training time and budget add to its figures",
    )
    args = parser.parse_args()
    previous = {}
    if args.resume and args.output and Path(args.output).exists():
        previous = json.loads(Path(args.output).read_text(encoding="utf-8"))
    pairs = read_pairs(require(CMUDICT / "train.tsv")).pairs
    # WORD<TAB>pron1[<TAB>pron2...]: (word, all accepted pronunciations)
    test = group_references(read_pairs(require(CMUDICT / "test.tsv"), multi_reference=True).pairs)

    # Dev by word: every pronunciation of a dev word leaves the training side.
    words = sorted({word for word, _ in pairs})
    dev_words = set(random.Random(0).sample(words, args.dev_words))
    train_pairs = [p for p in pairs if p[0] not in dev_words]
    dev_pairs = [p for p in pairs if p[0] in dev_words]
    # The recipe (configs/g2p.json), with the dev words as the validation split.
    config = Config.load(RECIPE).replace(
        "train",
        validation_split=validation_split_for(len(train_pairs), len(dev_pairs)),
        average_last=args.average_last,
    )

    model_dir = Path(args.model_dir)
    start = time.perf_counter()
    if not args.reuse:
        trained = train(
            train_pairs + dev_pairs,
            config,
            model_dir,
            resume=args.resume,
            overwrite=not args.resume,  # the benchmark's own directory: a fresh run replaces it
            callbacks=[time_budget_callback(args.hours * 3600)],
        )
    train_seconds = time.perf_counter() - start
    averaged = list(trained.averaged_epochs) if not args.reuse else None

    translator = tandem.Translator.from_dir(model_dir)
    decode = DecodeConfig(strategy="beam", beam_size=args.beam, batch_size=128)
    start = time.perf_counter()
    hypotheses = translator.translate([word for word, _ in test], decode)
    decode_seconds = time.perf_counter() - start
    rates = error_rates(hypotheses, [prons for _, prons in test])
    dev_grouped = group_references(dev_pairs)
    dev_rates = error_rates(
        translator.translate([word for word, _ in dev_grouped], decode),
        [prons for _, prons in dev_grouped],
    )
    result = {
        "benchmark": "g2p",
        "commands": [*previous.get("commands", []), " ".join(["python", *sys.argv])],
        "wer": rates["wer"],
        "per": rates["per"],
        "n_test_words": rates["n_sources"],
        "dev_wer": dev_rates["wer"],
        "dev_per": dev_rates["per"],
        "averaged_epochs": averaged,
        "train_pairs": len(train_pairs),
        "dev_pairs": len(dev_pairs),
        "train_seconds": None if args.reuse else train_seconds,
        "hours_budget": args.hours,
        "decode": {"strategy": "beam", "beam_size": args.beam, "seconds": decode_seconds},
        "model": model_facts(model_dir),
        "examples": [
            {"word": w, "output": h, "references": p}
            for (w, p), h in list(zip(test, hypotheses, strict=True))[:5]
        ],
        "machine": machine(),
    }
    if previous and not args.reuse:  # one training run, made in several parts
        add_earlier_part(result, previous)
    write_json(result, args.output)


if __name__ == "__main__":
    main()
