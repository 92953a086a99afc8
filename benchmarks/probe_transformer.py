"""Probe for a next model family: a small Transformer on the full Tatoeba data, as tandem trains.

Not a tandem model (tandem's families are recurrent): a plain Keras Transformer (pre-layer-norm,
d_model 256, 3 encoder and 3 decoder layers, 4 heads, feed-forward 1024, dropout 0.1,
sinusoidal positions; 7.1 M parameters), trained on exactly what attention-spm-384 of
`bench_tatoeba.py` trains on: the same SentencePiece pieces (2,000 per side), the same
length-bucketed, masked batches of 64 (`TrainingBatches`), the same label-smoothed loss
(`training_loss(0.1)`) and dev.tsv as the validation set, so its dev loss compares with that
run's history.csv. Adam (beta_2 0.98, clip 1.0) with the inverse square root schedule (peak
1e-3 after 1,000 warm-up steps). After the time budget, dev.tsv is decoded greedily (memory
computed once, the decoder run over the growing prefix) and scored with chrF and BLEU.

    python benchmarks/probe_transformer.py --hours 1.389 \
        --vocab-from benchmarks/models/tatoeba/attention-spm-384 --output probe.json
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tandem  # noqa: E402, F401, I001  (sets the Keras backend before Keras is imported)
import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import TATOEBA, machine, require, time_budget_callback, write_json  # noqa: E402
from keras import layers, ops  # noqa: E402
from tandem.data.batching import encode_pairs, pad_ids  # noqa: E402
from tandem.data.reading import group_references, read_pairs  # noqa: E402
from tandem.data.vocabulary import END_ID, PAD_ID, START_ID, Vocabulary  # noqa: E402
from tandem.evaluation import score  # noqa: E402
from tandem.training.batches import TrainingBatches  # noqa: E402
from tandem.training.callbacks import EpochTimer  # noqa: E402
from tandem.training.losses import training_loss  # noqa: E402

D, HEADS, FF, LAYERS, DROP = 256, 4, 1024, 3, 0.1
BATCH, PEAK, WARMUP, SEED = 64, 1e-3, 1000, 1337


def positions(length: int, d: int) -> np.ndarray:
    """Sinusoidal position encodings (length, d)."""
    pos = np.arange(length)[:, None]
    i = np.arange(d // 2)[None, :]
    angle = pos / np.power(10000.0, 2 * i / d)
    table = np.zeros((length, d), "float32")
    table[:, 0::2], table[:, 1::2] = np.sin(angle), np.cos(angle)
    return table


class Block(layers.Layer):
    """Pre-norm self-attention (and, in the decoder, cross-attention) and feed-forward."""

    def __init__(self, cross: bool, **kwargs):
        super().__init__(**kwargs)
        self.self_attn = layers.MultiHeadAttention(HEADS, D // HEADS, dropout=DROP)
        self.cross = cross
        if cross:
            self.cross_attn = layers.MultiHeadAttention(HEADS, D // HEADS, dropout=DROP)
            self.ln_c = layers.LayerNormalization(epsilon=1e-6)
        self.ln1 = layers.LayerNormalization(epsilon=1e-6)
        self.ln2 = layers.LayerNormalization(epsilon=1e-6)
        self.ff1 = layers.Dense(FF, activation="relu")
        self.ff2 = layers.Dense(D)
        self.drop = layers.Dropout(DROP)

    def call(self, x, self_mask, memory=None, cross_mask=None, training=None):
        h = self.ln1(x)
        h = self.self_attn(h, h, attention_mask=self_mask, training=training)
        x = x + self.drop(h, training=training)
        if self.cross:
            h = self.ln_c(x)
            h = self.cross_attn(h, memory, attention_mask=cross_mask, training=training)
            x = x + self.drop(h, training=training)
        h = self.ln2(x)
        h = self.ff2(self.drop(self.ff1(h), training=training))
        return x + self.drop(h, training=training)


class Transformer(keras.Model):
    """[source ids (b, s), decoder input ids (b, t)] -> probabilities (b, t, target vocab)."""

    def __init__(self, source_vocab_size: int, target_vocab_size: int, **kwargs):
        super().__init__(**kwargs)
        self.src_emb = layers.Embedding(source_vocab_size, D)
        self.tgt_emb = layers.Embedding(target_vocab_size, D)
        self.pos = ops.convert_to_tensor(positions(256, D))
        self.enc = [Block(False) for _ in range(LAYERS)]
        self.dec = [Block(True) for _ in range(LAYERS)]
        self.ln_e = layers.LayerNormalization(epsilon=1e-6)
        self.ln_d = layers.LayerNormalization(epsilon=1e-6)
        self.drop = layers.Dropout(DROP)
        self.out = layers.Dense(target_vocab_size, activation="softmax")

    def encode(self, src, training=None):
        s = ops.shape(src)[1]
        keep = ops.not_equal(src, PAD_ID)  # (b, s)
        x = self.src_emb(src) * math.sqrt(D) + self.pos[None, :s]
        x = self.drop(x, training=training)
        mask = ops.logical_and(keep[:, None, :], keep[:, :, None])  # (b, s, s)
        for block in self.enc:
            x = block(x, mask, training=training)
        return self.ln_e(x), keep

    def decode(self, tgt, memory, keep, training=None):
        batch, t = ops.shape(tgt)[0], ops.shape(tgt)[1]
        y = self.tgt_emb(tgt) * math.sqrt(D) + self.pos[None, :t]
        y = self.drop(y, training=training)
        causal = ops.tril(ops.ones((t, t), "bool"))[None]  # (1, t, t)
        self_mask = ops.broadcast_to(causal, (batch, t, t))
        cross = ops.broadcast_to(keep[:, None, :], (batch, t, ops.shape(keep)[1]))
        for block in self.dec:
            y = block(y, self_mask, memory, cross, training=training)
        return self.out(self.ln_d(y))

    def call(self, inputs, training=None):
        src, tgt = inputs
        memory, keep = self.encode(src, training=training)
        return self.decode(tgt, memory, keep, training=training)


class InverseSqrt(keras.optimizers.schedules.LearningRateSchedule):
    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0
        return PEAK * ops.minimum(step / WARMUP, ops.sqrt(WARMUP / step))


def greedy(model, sources, source_vocab, target_vocab, max_length: int) -> list[str]:
    hypotheses = []
    for start in range(0, len(sources), 256):
        chunk = [source_vocab.encode(s) for s in sources[start : start + 256]]
        memory, keep = model.encode(pad_ids(chunk, max(len(ids) for ids in chunk)))
        tgt = np.zeros((len(chunk), max_length), "int32")
        tgt[:, 0] = START_ID
        done = np.zeros(len(chunk), bool)
        for i in range(max_length - 1):
            probs = ops.convert_to_numpy(model.decode(tgt[:, : i + 1], memory, keep))
            chosen = probs[:, i].argmax(-1)
            chosen[done] = PAD_ID
            tgt[:, i + 1] = chosen
            done |= chosen == END_ID
            if done.all():
                break
        hypotheses += [target_vocab.decode(row[1:]) for row in tgt]
    return hypotheses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, required=True, help="training budget")
    parser.add_argument(
        "--vocab-from",
        help="model directory whose vocabularies to use (default: build them as tandem train "
        "does, 2,000 SentencePiece pieces per side on train.tsv and dev.tsv)",
    )
    parser.add_argument("--output", help="write the JSON result here too")
    args = parser.parse_args()
    train_pairs = read_pairs(require(TATOEBA / "train.tsv")).pairs
    dev_pairs = read_pairs(require(TATOEBA / "dev.tsv")).pairs
    pairs = train_pairs + dev_pairs
    if args.vocab_from:
        source_vocab = Vocabulary.load(Path(args.vocab_from) / "source_vocab.json")
        target_vocab = Vocabulary.load(Path(args.vocab_from) / "target_vocab.json")
    else:
        source_vocab = Vocabulary.build([s for s, _ in pairs], "spm", spm_vocab_size=2000)
        target_vocab = Vocabulary.build([t for _, t in pairs], "spm", spm_vocab_size=2000)
    encoded = encode_pairs(pairs, source_vocab, target_vocab)
    n_train = len(train_pairs)
    train_batches = TrainingBatches(
        encoded.take(slice(0, n_train)), BATCH, seed=SEED, mask_padding=True
    )
    dev_batches = TrainingBatches(
        encoded.take(slice(n_train, None)), BATCH, shuffle=False, mask_padding=True
    )

    keras.utils.set_random_seed(SEED)
    model = Transformer(len(source_vocab), len(target_vocab))
    model.compile(
        optimizer=keras.optimizers.Adam(InverseSqrt(), beta_2=0.98, global_clipnorm=1.0),
        loss=training_loss(0.1),
        weighted_metrics=["accuracy"],
    )
    model(train_batches[0][0])  # build
    start = time.perf_counter()
    history = model.fit(
        train_batches,
        validation_data=dev_batches,
        epochs=100,
        callbacks=[EpochTimer(), time_budget_callback(args.hours * 3600)],
        verbose=2,
    )
    train_seconds = time.perf_counter() - start

    dev_grouped = group_references(dev_pairs)
    start = time.perf_counter()
    hypotheses = greedy(
        model,
        [s for s, _ in dev_grouped],
        source_vocab,
        target_vocab,
        encoded.max_decoder_seq_length,
    )
    decode_seconds = time.perf_counter() - start
    dev = score(hypotheses, [r for _, r in dev_grouped])
    write_json(
        {
            "benchmark": "probe_transformer",
            "command": " ".join(["python", *sys.argv]),
            "parameters": model.count_params(),
            "train_seconds": train_seconds,
            "history": {k: [float(v) for v in values] for k, values in history.history.items()},
            "dev_greedy_chrf": dev["chrf"],
            "dev_greedy_bleu": dev["bleu"],
            "decode_seconds": decode_seconds,
            "machine": machine(),
        },
        args.output,
    )


if __name__ == "__main__":
    main()
