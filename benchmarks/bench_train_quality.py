"""Training quality at equal epochs: the configuration compared with JoeyNMT and OpenNMT-py,
trained for a fixed number of epochs and scored on the short test lines.

The configuration is `bench_train_overhead`'s (characters, embeddings 64, one bidirectional
LSTM layer of 256 a direction, LSTM decoder 256, Luong general attention with input feeding,
Adam 1e-3, batch 64, masked padding, no label smoothing). It trains on the first 10,000 pairs
of Tatoeba eng-fra `train.tsv`, all of them, as the peers do; the `dev.tsv` pairs within the
training range (source at most 16 characters, target no longer than the longest training
target) are its validation pairs (the peers' dev set), and nothing is selected on them: the
model scored is the last epoch's. It is scored on every `test.tsv` line whose source is at most
16 characters, line by line against that line's own reference (as the peers' `test` does):
chrF and BLEU (sacreBLEU), greedy and beam 5, with the validation loss per real target token
after each epoch and the seconds of each epoch. Each `--variants` entry adds `tandem train`
flags after the configuration's ("" is the configuration with tandem's defaults); each variant
trains once per `--seeds` seed, and its figures are the means over the seeds.

    python benchmarks/bench_train_quality.py --output benchmarks/results/train_quality.json
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train_overhead import FLAGS  # noqa: E402
from common import TATOEBA, machine, require, validation_split_for, write_json  # noqa: E402

MAX_SOURCE_CHARS = 16  # the first 10,000 training sources are at most this long
PEERS = {  # measured by the team on the same machine, data and configuration (issue 33)
    "joeynmt 2.3.0": {"chrf_greedy": 24.6, "chrf_beam5": 25.4, "val_loss_per_token": 1.32},
    "opennmt-py 3.5.1": {"chrf_greedy": 22.7, "chrf_beam5": 23.3, "val_loss_per_token": 1.43},
}


def read_lines(path: Path) -> list[tuple[str, str]]:
    from tandem.data.reading import read_pairs

    return list(read_pairs(str(require(path)), None).pairs)


def read_data(pairs: int) -> tuple[list, list, list]:
    """(the first `pairs` training pairs, the dev pairs within their range, the short test
    lines), read once for every run."""
    train_pairs = read_lines(TATOEBA / "train.tsv")[:pairs]
    longest_target = max(len(target) for _, target in train_pairs)
    dev_pairs = [
        (source, target)
        for source, target in read_lines(TATOEBA / "dev.tsv")
        if len(source) <= MAX_SOURCE_CHARS and len(target) <= longest_target
    ]
    test = [pair for pair in read_lines(TATOEBA / "test.tsv") if len(pair[0]) <= MAX_SOURCE_CHARS]
    return train_pairs, dev_pairs, test


def one_run(args, data: tuple, flags: str, seed: int, model_dir: str) -> dict:
    from tandem import Translator, compile_cache
    from tandem.cli.parser import build_parser, parse_args
    from tandem.cli.train import train_config
    from tandem.config import DecodeConfig
    from tandem.evaluation import score
    from tandem.training import train

    compile_cache.enable()
    train_pairs, dev_pairs, test = data
    split = validation_split_for(len(train_pairs), len(dev_pairs))
    argv = ["train", "-", "-o", model_dir, "--epochs", str(args.epochs), "--seed", str(seed)]
    argv += ["--validation-split", repr(split), *FLAGS, *shlex.split(flags)]
    config = train_config(parse_args(build_parser(), argv))
    start = time.perf_counter()
    result = train(train_pairs + dev_pairs, config, model_dir, verbose=0)
    train_seconds = time.perf_counter() - start

    translator = Translator.from_dir(model_dir)
    sources, references = [s for s, _ in test], [[t] for _, t in test]
    scores = {}
    for name, decode in {
        "greedy": DecodeConfig(strategy="greedy", batch_size=64),
        "beam5": DecodeConfig(strategy="beam", beam_size=5, batch_size=64),
    }.items():
        scores[name] = score(translator.translate(sources, decode), references)
    epochs = [row["seconds"] for row in result.history]
    return {
        "seed": seed,
        "chrf_greedy": scores["greedy"]["chrf"],
        "chrf_beam5": scores["beam5"]["chrf"],
        "bleu_greedy": scores["greedy"]["bleu"],
        "bleu_beam5": scores["beam5"]["bleu"],
        "val_loss_per_token": [row["val_loss"] for row in result.history],
        "epoch_s": epochs,
        "later_epoch_s": statistics.median(epochs[1:]) if len(epochs) > 1 else None,
        "train_seconds": train_seconds,
        "train_pairs": result.train_pairs,
        "validation_pairs": result.validation_pairs,
        "test_lines": scores["greedy"]["n_sources"],
        "parameters": int(translator.training_model.count_params()),
        "signatures": scores["greedy"]["signatures"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="write the JSON result here too")
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337])
    parser.add_argument(
        "--variants", nargs="+", default=["", "--init keras"], help="more `tandem train` flags"
    )
    args = parser.parse_args()
    variants, data = {}, read_data(args.pairs)
    with tempfile.TemporaryDirectory() as tmp:
        for number, flags in enumerate(args.variants):
            runs = []
            for seed in args.seeds:
                runs.append(
                    one_run(args, data, flags, seed, str(Path(tmp) / f"model-{number}-{seed}"))
                )
                print(f"{flags or 'defaults'}, seed {seed}: {runs[-1]}", file=sys.stderr)
            variants[flags or "defaults"] = {
                **{
                    key: statistics.mean(run[key] for run in runs)
                    for key in ("chrf_greedy", "chrf_beam5", "bleu_greedy", "bleu_beam5")
                },
                "val_loss_per_token": statistics.mean(
                    run["val_loss_per_token"][-1] for run in runs
                ),
                "later_epoch_s": statistics.median(run["later_epoch_s"] for run in runs),
                "runs": runs,
            }
    write_json(
        {
            "benchmark": "train_quality",
            "command": " ".join(["python", *sys.argv]),
            "data": f"first {args.pairs} lines of train.tsv; dev.tsv and test.tsv lines with "
            f"sources of at most {MAX_SOURCE_CHARS} characters",
            "flags": " ".join(FLAGS),
            "epochs": args.epochs,
            "seeds": args.seeds,
            "variants": variants,
            "peers": PEERS,
            "machine": machine(),
        },
        args.output,
    )


if __name__ == "__main__":
    main()
