"""Training speed: the example's training script against tandem's, on the seed data and model.

In one run: target tokens (padding excluded) trained per second by a faithful re-implementation
of the original script (whole-corpus one-hot arrays padded to the longest sentence, fit with
batch 64 and validation split 0.2), and by tandem (length-bucketed id batches, padding masked,
one-hot expanded inside the compiled step) at a throughput batch size; tandem's wall time, at
its quality settings, until its greedy test chrF reaches the original's 26.5; and peak memory
of one tandem epoch on 10,000 pairs and on the full corpus, with random samples of the corpus
showing what grows with its size (`memory_study`).

tandem runs as `tandem train` does, under the allocator settings of `tandem.allocator` (the
script re-runs itself under them); the original script runs in a child process as it would
on its own, with glibc's defaults, and once more under tandem's settings, for comparison.

    python benchmarks/bench_train.py --output benchmarks/results/train.json
    python benchmarks/bench_train.py --memory-only --output benchmarks/results/train.json

On a GPU (with JAX's CUDA build; the original runs in a child process beside this one, so
neither may take most of the GPU's memory up front):

    XLA_PYTHON_CLIENT_PREALLOCATE=false python benchmarks/bench_train.py --speed-only \
        --no-allocator-comparison --output benchmarks/results/train_gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tandem  # noqa: E402, F401, I001  (sets the Keras backend before Keras is imported)
import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import (  # noqa: E402
    TATOEBA,
    machine,
    peak_rss_mb,
    require,
    time_budget_callback,
    write_json,
)
from tandem.allocator import (  # noqa: E402
    KEEP_FREED_MEMORY,
    malloc_settings,
    relaunch,
    with_malloc_settings,
)
from tandem.config import Config, ModelConfig, TrainConfig  # noqa: E402
from tandem.data.batching import encode_pairs, encode_sources  # noqa: E402
from tandem.data.reading import group_references, read_pairs  # noqa: E402
from tandem.data.vocabulary import Vocabulary  # noqa: E402
from tandem.decoding import compile_stateless, greedy_search  # noqa: E402
from tandem.evaluation import score  # noqa: E402
from tandem.models import ModelDims, build_model, build_model_from_training_model  # noqa: E402
from tandem.training.batches import TrainingBatches  # noqa: E402
from tandem.training import train  # noqa: E402

ORIGINAL_CHRF = 26.5


def seed_dims(pairs):
    source = Vocabulary.build([s for s, _ in pairs])
    target = Vocabulary.build([t for _, t in pairs])
    dims = ModelDims(
        len(source), len(target), max(len(s) for s, _ in pairs), max(len(t) for _, t in pairs) + 2
    )
    return source, target, dims


def original_tokens_per_s(pairs, epochs: int) -> dict:
    """The example's script: one-hot arrays for the whole corpus, fit(batch 64, split 0.2)."""
    source, target, dims = seed_dims(pairs)
    encoded = encode_pairs(
        pairs, source, target, dims.max_encoder_seq_length, dims.max_decoder_seq_length
    )
    eye_s = np.eye(dims.num_encoder_tokens, dtype="float32")
    eye_t = np.eye(dims.num_decoder_tokens, dtype="float32")
    source_ids, decoder_input_ids, decoder_target_ids = encoded.padded()  # the whole corpus
    encoder_input_data = eye_s[source_ids]
    decoder_input_data = eye_t[decoder_input_ids]
    decoder_target_data = eye_t[decoder_target_ids]
    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig.seed(), dims).training_model
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    seconds = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)

    model.fit(
        [encoder_input_data, decoder_input_data],
        decoder_target_data,
        batch_size=64,
        epochs=epochs,
        validation_split=0.2,
        callbacks=[Timer()],
        verbose=0,
    )
    n_train = len(pairs) - int(len(pairs) * 0.2)
    tokens = int((decoder_target_ids[:n_train] != 0).sum())
    steady = float(np.median(seconds[1:])) if len(seconds) > 1 else seconds[0]
    return {
        "seconds_per_epoch": steady,
        "epoch_seconds": seconds,
        "target_tokens_per_epoch": tokens,
        "tokens_per_s": tokens / steady,
        "one_hot_arrays_mb": (
            encoder_input_data.nbytes + decoder_input_data.nbytes + decoder_target_data.nbytes
        )
        / 2**20,
    }


def original_in_child(epochs: int, allocator: dict[str, str]) -> dict:
    """`original_tokens_per_s` in a fresh process with these MALLOC_ settings (none: glibc's)."""
    environment = with_malloc_settings(os.environ, allocator)
    command = [sys.executable, __file__, "--original-only", "--original-epochs", str(epochs)]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, check=True)
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "malloc_env": allocator}


class EpochWallTime(keras.callbacks.Callback):
    """Each epoch's wall time, its end-of-epoch checkpoint included.

    history.csv's `seconds` stop before the checkpoint is written (the history row is part of
    it); passed first among `train`'s extra callbacks, which run after its checkpointer and
    before the test chrF decoding, this one counts the checkpoint and leaves out the decoding.
    """

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


class TestChrf(keras.callbacks.Callback):
    """After each epoch: greedy chrF on the eligible test sources; stop once it reaches target."""

    def __init__(self, config, dims, sources, references, target_vocab, target):
        super().__init__()
        self.config, self.dims = config, dims
        self.sources, self.references = sources, references
        self.target_vocab, self.target = target_vocab, target
        self.scores, self.reached_at = [], None

    def on_epoch_end(self, epoch, logs=None):
        if not hasattr(self, "decode"):
            model = build_model_from_training_model(self.config.model, self.dims, self.model)
            batch = len(self.sources)

            def decode(ids):
                return greedy_search(
                    model.step, model.encode(ids), batch, self.dims.max_decoder_seq_length
                )[0]

            self.decode = compile_stateless(decode, model.variables)
        ids = np.asarray(self.decode(self.sources))
        chrf = score([self.target_vocab.decode(row) for row in ids], self.references)["chrf"]
        self.scores.append(chrf)
        if chrf >= self.target and self.reached_at is None:
            self.reached_at = epoch + 1
            self.model.stop_training = True


def training_peak_rss(data: Path, samples: int | None = None, epochs: int = 1) -> float:
    """Peak RSS of `epochs` tandem training epochs (seed architecture, masked) in its own
    process."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.json"
        Config(model=ModelConfig(inputs="one_hot")).save(config)
        command = [
            sys.executable,
            "-m",
            "tandem",
            "train",
            str(data),
            "-o",
            f"{tmp}/m",
            "--config",
            str(config),
            "--epochs",
            str(epochs),
            "--batch-size",
            str(MEMORY_BATCH_SIZE),
            "-q",
        ]
        return peak_rss_mb(command + (["--max-samples", str(samples)] if samples else []))


MEMORY_BATCH_SIZE = 128
# The training data path up to the batches, without the model: read, vocabularies, encode.
DATA_STAGES = """
import sys
from tandem.data.batching import encode_pairs
from tandem.data.reading import read_pairs
from tandem.data.vocabulary import Vocabulary
from tandem.training.batches import TrainingBatches
pairs = read_pairs(sys.argv[1]).pairs
source = Vocabulary.build([s for s, _ in pairs])
target = Vocabulary.build([t for _, t in pairs])
batches = TrainingBatches(encode_pairs(pairs, source, target), int(sys.argv[2]), mask_padding=True)
for index in range(len(batches)):
    batches[index]
"""


def training_steps(lines: list[str]) -> int:
    """Training batches per epoch of `tandem train` on these lines (the last fifth validates)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sample.tsv"
        path.write_text("".join(lines), encoding="utf-8")
        pairs = read_pairs(path).pairs
    pairs = pairs[: len(pairs) - int(len(pairs) * TrainConfig().validation_split)]
    source = Vocabulary.build([s for s, _ in pairs])
    target = Vocabulary.build([t for _, t in pairs])
    encoded = encode_pairs(pairs, source, target)
    return len(TrainingBatches(encoded, MEMORY_BATCH_SIZE, mask_padding=True))


def memory_study(train_path: Path) -> dict:
    """Peak RSS against corpus size, and what the growth consists of.

    Random samples of train.tsv (file order kept) have the corpus's length distribution, so
    their differences show the cost of more pairs alone; the first 10,000 lines (the seed
    data, the shortest sentences) are measured too. For each: the peak RSS of one training
    epoch, of the data stages alone (read, vocabularies, encode, every batch cut once), the
    size of the text and of the token id arrays, and how many batch shapes (each a compiled
    program) an epoch uses. A process's peak also rises with the number of steps it has
    trained (over its first few hundred), so each sample is also trained for as many epochs as
    it takes to make at least the steps of one epoch on the full corpus: that peak differs
    from sample to sample by what the data cost, not by how long the run was.
    """
    lines = train_path.read_text(encoding="utf-8").splitlines(keepends=True)
    rng = np.random.default_rng(0)
    samples = {"first_10k": lines[:10_000]}
    for n in (10_000, 34_000):
        samples[f"random_{n // 1000}k"] = [
            lines[i] for i in sorted(rng.permutation(len(lines))[:n])
        ]
    samples["full"] = lines
    rows = {}
    full_steps = training_steps(lines)
    with tempfile.TemporaryDirectory() as tmp:
        for name, sample in samples.items():
            path = Path(tmp) / f"{name}.tsv"
            path.write_text("".join(sample), encoding="utf-8")
            pairs = read_pairs(path).pairs
            source = Vocabulary.build([s for s, _ in pairs])
            target = Vocabulary.build([t for _, t in pairs])
            encoded = encode_pairs(pairs, source, target)
            batches = TrainingBatches(encoded, MEMORY_BATCH_SIZE, mask_padding=True)
            shapes = set()
            for index in range(len(batches)):
                (source_ids, decoder_inputs), _, _ = batches[index]
                shapes.add((source_ids.shape[1], decoder_inputs.shape[1]))
            arrays = (encoded.source_ids, encoded.source_offsets)
            arrays += (encoded.target_ids, encoded.target_offsets)
            steps = training_steps(sample)
            epochs = -(-full_steps // steps)  # ceil
            rows[name] = {
                "pairs": len(pairs),
                "steps_per_epoch": steps,
                "text_mb": path.stat().st_size / 2**20,
                "token_arrays_mb": sum(a.nbytes for a in arrays) / 2**20,
                "max_source_length": encoded.max_encoder_seq_length,
                "max_target_length": encoded.max_decoder_seq_length - 2,
                "batch_shapes": len(shapes),
                "data_stages_peak_rss_mb": peak_rss_mb(
                    [sys.executable, "-c", DATA_STAGES, str(path), str(MEMORY_BATCH_SIZE)]
                ),
                "epoch_peak_rss_mb": training_peak_rss(path),
                "epochs_for_full_steps": epochs,
                "full_steps_peak_rss_mb": training_peak_rss(path, epochs=epochs),
            }
            print(json.dumps({name: rows[name]}), file=sys.stderr)
    small, full = rows["random_10k"], rows["full"]
    growth = {key: full[key] - small[key] for key in small if key.endswith("_mb")}
    return {
        "command": " ".join(["python", *sys.argv]),
        "machine": machine(),  # may differ from the speed figures' when run on its own
        "batch_size": MEMORY_BATCH_SIZE,
        "samples": rows,
        "growth_random_10k_to_full": growth,
    }


def memory_figures(train_path: Path) -> dict:
    study = memory_study(train_path)
    samples = study["samples"]
    return {
        "peak_rss_mb_10k": samples["first_10k"]["epoch_peak_rss_mb"],
        "peak_rss_mb_full_corpus": samples["full"]["epoch_peak_rss_mb"],
        "full_corpus_pairs": samples["full"]["pairs"],
        "memory": study,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="write the JSON result here too")
    parser.add_argument("--original-epochs", type=int, default=4)
    parser.add_argument("--max-epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=64, help="the time-to-quality run's")
    parser.add_argument("--optimizer", default="adam", help="the time-to-quality run's")
    parser.add_argument("--learning-rate", type=float, default=0.002)
    parser.add_argument("--gradient-clip-norm", type=float, default=1.0)
    parser.add_argument(
        "--time-budget",
        type=float,
        help="seconds the time-to-quality run may train (default: until --max-epochs)",
    )
    parser.add_argument("--throughput-batch-size", type=int, default=256)
    parser.add_argument("--throughput-epochs", type=int, default=4)
    parser.add_argument("--original-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--speed-only", action="store_true", help="leave out the memory figures (a repeat run)"
    )
    parser.add_argument(
        "--no-allocator-comparison",
        action="store_true",
        help="run the original script once, with glibc's defaults (on a GPU the host "
        "allocator is not what is compared)",
    )
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="measure only the memory figures; the speed figures already in --output are kept",
    )
    args = parser.parse_args()
    train_path = require(TATOEBA / "train.tsv")
    if args.memory_only:
        previous = json.loads(Path(args.output).read_text(encoding="utf-8")) if args.output else {}
        write_json({**previous, **memory_figures(train_path)}, args.output)
        return
    pairs = read_pairs(train_path, max_samples=10_000).pairs
    if args.original_only:
        print(json.dumps(original_tokens_per_s(pairs, args.original_epochs)))
        return

    original = original_in_child(args.original_epochs, {})
    original_same_allocator = (
        None
        if args.no_allocator_comparison
        else original_in_child(args.original_epochs, KEEP_FREED_MEMORY)
    )

    source_vocab, target_vocab, dims = seed_dims(pairs)
    grouped = group_references(read_pairs(require(TATOEBA / "test.tsv")).pairs)
    eligible = [
        (s, r)
        for s, r in grouped
        if len(s) <= dims.max_encoder_seq_length and not source_vocab.unknown_tokens(s)
    ]
    source_ids, _ = encode_sources(
        [s for s, _ in eligible], source_vocab, dims.max_encoder_seq_length
    )
    # The seed architecture (one-hot inputs, one LSTM per side, latent 256) with padding
    # masked and length-bucketed batches; speed at a large batch, quality at tuned settings.
    seed_masked = ModelConfig(inputs="one_hot")
    throughput = Config(model=seed_masked).replace(
        "train", epochs=args.throughput_epochs, batch_size=args.throughput_batch_size
    )
    fast_wall = EpochWallTime()
    with tempfile.TemporaryDirectory() as tmp:
        fast = train(pairs, throughput, Path(tmp) / "m", verbose=0, callbacks=[fast_wall])
    fast_seconds = fast_wall.seconds
    n_train = fast.train_pairs
    tokens = int(sum(len(t) + 1 for _, t in pairs[:n_train]))  # characters + end token
    fast_steady = float(np.median(fast_seconds[1:]))  # the first epoch compiles

    config = Config(model=seed_masked).replace(
        "train",
        epochs=args.max_epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        gradient_clip_norm=args.gradient_clip_norm,
    )
    quality = TestChrf(
        config, dims, source_ids, [r for _, r in eligible], target_vocab, ORIGINAL_CHRF
    )
    wall = EpochWallTime()
    with tempfile.TemporaryDirectory() as tmp:
        callbacks = [wall, quality]
        if args.time_budget:
            callbacks.append(time_budget_callback(args.time_budget))
        result = train(pairs, config, Path(tmp) / "m", verbose=0, callbacks=callbacks)
    seconds = wall.seconds
    # The first epoch compiles; a run stopped after it (--max-epochs 1) has no steady rate.
    steady = float(np.median(seconds[1:])) if len(seconds) > 1 else None
    reached = quality.reached_at
    original_100_epochs = 100 * original["seconds_per_epoch"]

    report = {
        "benchmark": "train",
        "command": " ".join(["python", *sys.argv]),
        "original": original,
        "original_under_tandem_allocator": original_same_allocator,
        "environment": {
            name: os.environ[name]
            for name in sorted(os.environ)
            if name in ("KERAS_BACKEND", "XLA_FLAGS", "XLA_PYTHON_CLIENT_PREALLOCATE")
            or name.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))
        },
        "tandem_malloc_env": malloc_settings(os.environ),
        "tandem_throughput": {
            "batch_size": args.throughput_batch_size,
            "seconds_per_epoch": fast_steady,
            "epoch_seconds": fast_seconds,
            "epoch_seconds_before_checkpoint": [row["seconds"] for row in fast.history],
            "target_tokens_per_epoch": tokens,
            "tokens_per_s": tokens / fast_steady,
        },
        "tandem": {
            "batch_size": args.batch_size,
            "optimizer": args.optimizer,
            "learning_rate": args.learning_rate,
            "gradient_clip_norm": args.gradient_clip_norm,
            "time_budget_s": args.time_budget,
            "seconds_per_epoch": steady,
            "epoch_seconds": seconds,
            "epoch_seconds_before_checkpoint": [row["seconds"] for row in result.history],
            "tokens_per_s": tokens / steady if steady else None,
            "test_chrf_per_epoch": quality.scores,
            "epochs_to_original_chrf": reached,
            "seconds_to_original_chrf": sum(seconds[:reached]) if reached else None,
        },
        "tokens_per_s_ratio": (tokens / fast_steady) / original["tokens_per_s"],
        "tokens_per_s_ratio_same_allocator": (
            (tokens / fast_steady) / original_same_allocator["tokens_per_s"]
            if original_same_allocator
            else None
        ),
        "original_100_epoch_seconds": original_100_epochs,
        "time_to_quality_ratio": (
            sum(seconds[:reached]) / original_100_epochs if reached else None
        ),
        "n_test_sources": len(eligible),
        **({} if args.speed_only else memory_figures(train_path)),
        "machine": machine(),
    }
    write_json(report, args.output)
    print(
        json.dumps({k: report[k] for k in ("tokens_per_s_ratio", "time_to_quality_ratio")}),
        file=sys.stderr,
    )


if __name__ == "__main__":
    if "--original-only" not in sys.argv:
        relaunch([sys.executable, *sys.argv])  # tandem trains as `tandem train` does
    main()
