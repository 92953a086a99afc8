"""Tatoeba eng-fra: the seed model and an attention model, selected on dev, scored once on test.

Runs (each with its own training time budget):
  seed           the example's model on the full train.tsv
  attention      tandem's attention model on characters, full train.tsv
  attention-spm  the same architecture on SentencePiece subwords, full train.tsv
  attention-spm-decay  the same with a decaying learning rate and checkpoint averaging
  attention-spm-small  the seed-regime architecture (embeddings 256, dropout 0.4) on 2,000
                 pieces of the full data, with that decay and averaging
  attention-spm-feeding  attention-spm-small with input feeding (the previous attentional
                 vector fed to the decoder with each token)
  attention-spm-384  attention-spm-small 384 wide (encoder, decoder and attention)
  attention-transformer  a Transformer (3 + 3 pre-norm blocks, 256 wide) on the same pieces
  seed-regime    a smaller attention model on subwords of the first 10,000 lines (validated on
                 the dev.tsv pairs within their range), scored on the eligible test sources
                 of the seed benchmark (the example reaches chrF 26.5 there)

Full-data runs are scored on dev.tsv too; the best attention model is the one with the best
dev chrF (test.tsv never selects anything). Each model is decoded on dev greedily and with
beams of 5 and 10 under several length normalisations; the decoding with the best dev chrF
(or the one `--beam` fixes) is the one that scores test; for a run that averages its last N
epochs, the window (1 to N epochs ending at the kept one) is chosen on dev with it, and the
model directory is left holding the model that scored test. With --merge, the runs already in
--output that this invocation does not run are kept, so long runs can be made one at a time;
with --resume a run continues from its last checkpoint (an interrupted one, or one its time
budget stopped: --hours is then the budget of this part) and its training time adds up;
--train-only trains a part without scoring it (its time is recorded for the next part).

    python benchmarks/bench_tatoeba.py --output benchmarks/results/tatoeba.json [--hours 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tandem  # noqa: E402
from common import (  # noqa: E402
    ROOT,
    TATOEBA,
    add_earlier_part,
    machine,
    model_facts,
    require,
    small_attention,
    time_budget_callback,
    validation_split_for,
    write_json,
)
from tandem.config import Config, DataConfig, DecodeConfig, ModelConfig, TrainConfig  # noqa: E402
from tandem.data.reading import group_references, read_pairs  # noqa: E402
from tandem.data.vocabulary import Vocabulary  # noqa: E402
from tandem.evaluation import score  # noqa: E402
from tandem.training import average_model_dir, train  # noqa: E402

# The full data: the small-data architecture, wider and with less dropout.
ATTENTION = dataclasses.replace(small_attention(), latent_dim=512, embedding_dim=256, dropout=0.2)
ADAM = {"optimizer": "adam", "epochs": 100, "gradient_clip_norm": 1.0}
SUBWORDS = DataConfig(source_tokens="spm", target_tokens="spm", spm_vocab_size=4000)
# The G2P recipe: the learning rate halved after every epoch whose dev loss is not the best so
# far, and the mean of the 5 epochs up to the best.
DECAY_AND_AVERAGE = TrainConfig(
    patience=4, label_smoothing=0.1, lr_schedule="plateau", lr_patience=1, average_last=5, **ADAM
)
# The small-data model on the full data, cheaper per epoch than the 512-wide one so that more
# epochs fit: dropout 0.4 between layers, on the embeddings and before the softmax, 2,000
# pieces per side.
SMALL = dataclasses.replace(
    small_attention(), embedding_dim=256, dropout=0.4, embedding_dropout=0.4, output_dropout=0.4
)
SMALL_SUBWORDS = dataclasses.replace(SUBWORDS, spm_vocab_size=2000)


def recipe(name: str) -> tuple[ModelConfig, TrainConfig, DataConfig]:
    """The sections of configs/NAME.json, so a recipe and the figure it produced cannot drift."""
    config = Config.load(ROOT / "configs" / f"{name}.json")
    return config.model, config.train, config.data


RUNS = {  # name: (model, training, data)
    "seed": (ModelConfig.seed(), TrainConfig(epochs=100, patience=5), DataConfig()),
    "attention": (ATTENTION, TrainConfig(patience=3, **ADAM), DataConfig()),
    "attention-spm": (
        dataclasses.replace(ATTENTION, dropout=0.3),
        TrainConfig(patience=3, label_smoothing=0.1, **ADAM),
        SUBWORDS,
    ),
    # The same with the G2P recipe.
    "attention-spm-decay": (
        dataclasses.replace(ATTENTION, dropout=0.3),
        DECAY_AND_AVERAGE,
        SUBWORDS,
    ),
    # SMALL with the G2P recipe.
    "attention-spm-small": (SMALL, DECAY_AND_AVERAGE, SMALL_SUBWORDS),
    # The same with input feeding (Luong et al., 2015): each decoder step also reads the
    # previous step's attentional vector.
    "attention-spm-feeding": (
        dataclasses.replace(SMALL, input_feeding=True),
        DECAY_AND_AVERAGE,
        SMALL_SUBWORDS,
    ),
    # The same recipe with more capacity: 384 wide.
    "attention-spm-384": (
        dataclasses.replace(SMALL, latent_dim=384),
        DECAY_AND_AVERAGE,
        SMALL_SUBWORDS,
    ),
    # The recipes (configs/): the best model, a Transformer, and the seed-regime model.
    "attention-transformer": recipe("tatoeba"),
    "seed-regime": recipe("seed-regime"),
}
# Decodings tried on dev for each model; the one with the best dev chrF scores test.
DECODINGS = [DecodeConfig(strategy="greedy", batch_size=64)] + [
    DecodeConfig(strategy="beam", beam_size=beam, alpha=alpha, batch_size=64)
    for beam, alpha in ((5, 0.0), (5, 0.3), (5, 0.6), (5, 1.0), (10, 0.0), (10, 0.6), (10, 1.0))
]
# The best model is chosen among these, on dev: every full-data attention run.
CANDIDATES = tuple(name for name in RUNS if name.startswith("attention"))


class SeedRange:
    """The seed benchmark's eligibility rule, fixed by the 10,000 pairs whatever the model.

    A source is eligible when its characters all occur in the 10,000 sources and it is no
    longer than the longest of them: the rule `Translator.is_within_training_range` applies
    to the example's character model trained on them (263 of the test sources).
    """

    def __init__(self, pairs):
        self.sources = Vocabulary.build([s for s, _ in pairs], "char")
        self.targets = Vocabulary.build([t for _, t in pairs], "char")
        self.max_source = max(len(self.sources.tokenize(s)) for s, _ in pairs)
        self.max_target = max(len(self.targets.tokenize(t)) for _, t in pairs)

    def source(self, text: str) -> bool:
        return self.sources.covers(text, self.max_source)

    def pair(self, source: str, target: str) -> bool:
        return self.source(source) and self.targets.covers(target, self.max_target)


def describe(decode: DecodeConfig) -> dict:
    if decode.strategy == "greedy":
        return {"name": "greedy", "strategy": "greedy"}
    name = f"beam {decode.beam_size}, alpha {decode.alpha}"
    return {"name": name, "strategy": "beam", "beam": decode.beam_size, "alpha": decode.alpha}


def run(name: str, args, train_pairs, dev_pairs, test_grouped) -> dict:
    model_config, train_config, data_config = RUNS[name]
    if name == "seed-regime":
        within = SeedRange(train_pairs)
        # All 10,000 pairs train; the dev.tsv pairs within their range select the model.
        dev_pairs = [pair for pair in dev_pairs if within.pair(*pair)]
        test_grouped = [(s, r) for s, r in test_grouped if within.source(s)]
    split = validation_split_for(len(train_pairs), len(dev_pairs))
    config = Config(data=data_config, model=model_config, train=train_config).replace(
        "train", validation_split=split
    )
    model_dir = Path(args.model_root) / name
    start = time.perf_counter()
    if not args.reuse:
        train(
            train_pairs + dev_pairs,
            config,
            model_dir,
            resume=args.resume,
            overwrite=not args.resume,  # the benchmark's own directory: a fresh run replaces it
            callbacks=[time_budget_callback(args.hours * 3600)],
        )
    train_seconds = time.perf_counter() - start
    if args.train_only:
        return {"train_seconds": train_seconds, "hours_budget": args.hours, "scored": False}

    def scored(translator, grouped, decode):
        return score(translator.translate([s for s, _ in grouped], decode), [r for _, r in grouped])

    decodings = (
        DECODINGS
        if args.beam is None
        else [DecodeConfig(strategy="beam", beam_size=args.beam, batch_size=64)]
    )
    dev_grouped = group_references(dev_pairs)
    # With averaging, the window (1 to average_last epochs ending at the kept one) is chosen
    # on dev together with the decoding; each is written into the model directory in turn.
    windows = range(1, train_config.average_last + 1) if train_config.average_last else [None]
    tried, epochs = {}, {}  # window: [(decode, dev scores)], window: the epochs it averages
    for window in windows:
        if window is not None:
            epochs[window] = list(average_model_dir(model_dir, window))
        translator = tandem.Translator.from_dir(model_dir)
        tried[window] = [(d, scored(translator, dev_grouped, d)) for d in decodings]
    window, decode, dev = max(
        ((w, d, result) for w, pairs in tried.items() for d, result in pairs),
        key=lambda row: row[2]["chrf"],
    )
    if window != windows[-1]:  # the directory holds the last window tried
        average_model_dir(model_dir, window)
        translator = tandem.Translator.from_dir(model_dir)
    scores = scored(translator, test_grouped, decode)
    return {
        "chrf": scores["chrf"],
        "bleu": scores["bleu"],
        "exact_match": scores["exact_match"],
        "n_sources": scores["n_sources"],
        "signatures": scores["signatures"],
        "dev_chrf": dev["chrf"],
        "dev_bleu": dev["bleu"],
        "train_seconds": None if args.reuse else train_seconds,
        "hours_budget": None if args.reuse else args.hours,
        "decode": describe(decode),
        "dev_chrf_by_decode": {describe(d)["name"]: r["chrf"] for d, r in tried[window]},
        "averaged_epochs": epochs.get(window),
        "dev_chrf_by_average": None
        if window is None
        else {str(w): max(r["chrf"] for _, r in pairs) for w, pairs in tried.items()},
        "model": model_facts(model_dir),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="write the JSON result here too")
    parser.add_argument("--model-root", default=str(ROOT / "benchmarks/models/tatoeba"))
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--hours", type=float, default=3.0, help="training budget per run")
    parser.add_argument(
        "--beam",
        type=int,
        help="decode with this beam (length normalisation off) instead of choosing the "
        "decoding on dev among greedy and beams 5 and 10 with several alphas",
    )
    parser.add_argument("--reuse", action="store_true", help="score already trained models")
    parser.add_argument(
        "--merge", action="store_true", help="keep the other runs already in --output"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue runs from their last checkpoints, interrupted or stopped by their "
        "time budget (with --merge, their training time and budget add to the earlier ones)",
    )
    parser.add_argument(
        "--train-only",
        action="store_true",
        help="train (a part of a run to be resumed) and record its time, without scoring",
    )
    args = parser.parse_args()
    if args.train_only and args.reuse:
        parser.error("--train-only and --reuse exclude each other")
    train_all = read_pairs(require(TATOEBA / "train.tsv")).pairs
    dev = read_pairs(require(TATOEBA / "dev.tsv")).pairs
    test_grouped = group_references(read_pairs(require(TATOEBA / "test.tsv")).pairs)

    previous = {}
    if args.merge and args.output and Path(args.output).exists():
        previous = json.loads(Path(args.output).read_text(encoding="utf-8"))
    results = dict(previous.get("runs", {}))
    host = machine()
    for name in args.runs:
        train_pairs = train_all[:10_000] if name == "seed-regime" else train_all
        result = run(name, args, train_pairs, dev, test_grouped)
        # Runs merged into one file may come from different hosts: each says where it trained.
        result["cpu"] = host["cpu"]
        if args.reuse and name in results:  # scored again: the training facts stay
            for key in ("train_seconds", "hours_budget", "cpu"):
                result[key] = results[name].get(key)
        elif args.resume and name in results:
            add_earlier_part(result, results[name])
        results[name] = result
        print(json.dumps({name: results[name].get("chrf")}), file=sys.stderr)
    candidates = [name for name in CANDIDATES if results.get(name, {}).get("dev_chrf")]
    best_name = max(candidates, key=lambda name: results[name]["dev_chrf"], default=None)
    best = results.get(best_name, {})
    commands = previous.get("commands", []) + [" ".join(["python", *sys.argv])]
    result = {
        "benchmark": "tatoeba",
        "commands": commands,
        "best": best_name,
        "chrf": best.get("chrf"),
        "bleu": best.get("bleu"),
        "seed_regime_chrf": results.get("seed-regime", {}).get("chrf"),
        "train_seconds": best.get("train_seconds"),
        "model": best.get("model"),
        "runs": results,
        "machine": host,
    }
    write_json(result, args.output)


if __name__ == "__main__":
    main()
