"""Where a training step's time goes: the seed architecture's compiled step, per batch size.

For batches of B pairs with S source and T target steps (by default the seed data's typical
bucket, 16 and 24), times the compiled forward pass, forward and backward pass, and the whole
training step (with the optimizer update) of `EncoderDecoder.fit_model` (one-hot inputs, one LSTM
per side, latent 256, padding masked), and the rate of the LSTM's recurrent product alone (a
scan of (B, 256) x (256, 1024) products) for comparison. Useful FLOPs count the recurrent and
output products, forward (1x) and backward (2x), not the one-hot input products.

    python benchmarks/bench_train_step.py --output benchmarks/results/train_step.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tandem  # noqa: E402, F401, I001  (sets the Keras backend before Keras is imported)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from common import machine, write_json  # noqa: E402
from tandem.config import ModelConfig  # noqa: E402
from tandem.models import ModelDims, build_model  # noqa: E402

LATENT = 256
# The seed data's vocabulary sizes (source, target) and longest sequences.
DIMS = ModelDims(72, 95, 16, 59)


def best_ms(function, *args, repeats: int) -> float:
    """Fastest of `repeats` calls after a warm-up (compilation) call, in milliseconds."""
    jax.block_until_ready(function(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(function(*args))
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def measure(batch: int, source_steps: int, target_steps: int, repeats: int) -> dict:
    model = build_model(ModelConfig(inputs="one_hot", latent_dim=LATENT), DIMS).fit_model
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    source = rng.integers(4, DIMS.num_encoder_tokens, (batch, source_steps)).astype("int32")
    decoder = rng.integers(4, DIMS.num_decoder_tokens, (batch, target_steps)).astype("int32")
    targets = rng.integers(4, DIMS.num_decoder_tokens, (batch, target_steps)).astype("int32")
    weights = np.ones((batch, target_steps), "float32")

    trainable = [v.value for v in model.trainable_variables]
    others = [v.value for v in model.non_trainable_variables]

    def loss(trainable):
        probs, _ = model.stateless_call(trainable, others, [source, decoder])
        picked = jnp.take_along_axis(probs, targets[..., None], axis=-1)
        return -jnp.mean(jnp.log(picked))

    forward_ms = best_ms(jax.jit(loss), trainable, repeats=repeats)
    backward_ms = best_ms(jax.jit(jax.grad(loss)), trainable, repeats=repeats)

    def step():
        return model.train_on_batch([source, decoder], targets, sample_weight=weights)

    step_ms = best_ms(lambda: step(), repeats=repeats)

    row_steps = batch * (source_steps + target_steps)
    recurrent = 2 * LATENT * 4 * LATENT  # FLOPs of one row's h @ U
    output = 2 * LATENT * DIMS.num_decoder_tokens  # one row's decoder_dense product
    useful = 3 * (row_steps * recurrent + batch * target_steps * output)

    h = jnp.ones((batch, LATENT))
    kernel = jnp.ones((LATENT, 4 * LATENT)) * 0.01
    steps = source_steps + target_steps

    @jax.jit
    def recurrence(h, kernel):
        def one(h, _):
            return jnp.tanh(h @ kernel)[:, :LATENT], None

        return jax.lax.scan(one, h, None, length=steps)[0]

    scan_ms = best_ms(recurrence, h, kernel, repeats=repeats)
    return {
        "batch_size": batch,
        "source_steps": source_steps,
        "target_steps": target_steps,
        "forward_ms": forward_ms,
        "forward_backward_ms": backward_ms,
        "train_step_ms": step_ms,
        "backward_over_forward": (backward_ms - forward_ms) / forward_ms,
        "us_per_row_step": step_ms * 1e3 / row_steps,
        "useful_gflops": useful / step_ms / 1e6,
        "recurrent_product_scan_gflops": batch * steps * recurrent / scan_ms / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="write the JSON result here too")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--source-steps", type=int, default=16)
    parser.add_argument("--target-steps", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    rows = [
        measure(batch, args.source_steps, args.target_steps, args.repeats)
        for batch in args.batch_sizes
    ]
    write_json(
        {
            "benchmark": "train_step",
            "command": " ".join(["python", *sys.argv]),
            "runs": rows,
            "machine": machine(),
        },
        args.output,
    )


if __name__ == "__main__":
    main()
