"""The offline demo: build English->French number and date data, train the classic example's
model and an attention model, evaluate both, translate."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tandem import compile_cache
from tandem.config import Config, ModelConfig
from tandem.data.demo_data import make_demo_pairs, split_pairs, write_tsv
from tandem.errors import TandemError

EXAMPLES = ("twenty-one", "three hundred and twelve", "March 5, 2021", "December 25, 1999")
# The demo's settings, chosen to train in a few minutes on two CPU cores.
PAIRS, EPOCHS, LATENT_DIM = 3000, 30, 128
DESCRIPTIONS = {
    "seed": "classic example's model (one-hot characters, one LSTM per side)",
    "attention": "attention model (embeddings, bidirectional encoder, Luong attention)",
}


def demo_configs(latent_dim: int, epochs: int, seed: int) -> dict[str, Config]:
    """The two models the demo trains: the classic example's, and tandem's attention model."""
    train_options = {"epochs": epochs, "patience": 4, "validation_split": 0.1, "seed": seed}
    example = Config(model=ModelConfig.seed(latent_dim=latent_dim)).replace(
        "train", **train_options
    )
    attention = Config().replace(
        "model",
        latent_dim=latent_dim,
        embedding_dim=max(latent_dim // 2, 1),
        bidirectional=True,
        attention="general",
    )
    attention = attention.replace("train", optimizer="adam", **train_options)
    return {"seed": example, "attention": attention}


def run_demo(
    output: str | Path,
    *,
    pairs: int = PAIRS,
    epochs: int = EPOCHS,
    latent_dim: int = LATENT_DIM,
    seed: int = 0,
    verbose: int = 2,
) -> dict[str, dict]:
    """Make the data, train the example's model and an attention model on it, score held-out
    pairs with each, translate examples.

    Args:
        output: directory for data/ (train.tsv, test.tsv) and the models (seed/, attention/);
            a demo run earlier into it is replaced.
        pairs: how many distinct pairs to generate (10% are held out for testing).
        epochs: most epochs per model (early stopping on validation loss may end sooner).
        latent_dim: LSTM state size (the attention model's embeddings are half as large).
        seed: data and training seed.
        verbose: Keras progress level.

    Returns:
        An evaluation report per model ("seed", "attention"), with `examples` (source,
        translation) and `model_dir` added.
    """
    from tandem.evaluation import evaluate
    from tandem.training import train
    from tandem.translator import Translator

    output = Path(output)
    data_dir = output / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    train_pairs, test_pairs = split_pairs(make_demo_pairs(pairs, seed), 0.1, seed)
    write_tsv(train_pairs, data_dir / "train.tsv")
    write_tsv(test_pairs, data_dir / "test.tsv")
    print(
        f"demo data: {len(train_pairs)} training and {len(test_pairs)} test pairs in {data_dir}",
        file=sys.stderr,
    )
    reports = {}
    for name, config in demo_configs(latent_dim, epochs, seed).items():
        print(f"training the {DESCRIPTIONS[name]}", file=sys.stderr)
        train(
            train_pairs,
            config,
            output / name,
            overwrite=True,
            verbose=verbose,
            on_start=(lambda plan: print(plan.summary(), file=sys.stderr)) if verbose else None,
        )
        translator = Translator.from_dir(output / name)
        report = evaluate(translator, data_dir / "test.tsv")
        report["examples"] = list(zip(EXAMPLES, translator.translate(list(EXAMPLES)), strict=True))
        report["model_dir"] = str(output / name)
        reports[name] = report
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tandem.demo", description=__doc__)
    parser.add_argument("--output", default="runs/demo", help="directory for data and models")
    parser.add_argument("--pairs", type=int, default=PAIRS, help="pairs to generate")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="most training epochs")
    parser.add_argument("--latent-dim", type=int, default=LATENT_DIM, help="LSTM state size")
    args = parser.parse_args(argv)
    compile_cache.enable()
    try:
        reports = run_demo(
            args.output, pairs=args.pairs, epochs=args.epochs, latent_dim=args.latent_dim
        )
    except TandemError as exc:
        print(f"tandem: error: {exc}", file=sys.stderr)
        return exc.exit_code
    for name, report in reports.items():
        print(f"\n{DESCRIPTIONS[name]}, {report['n_sources']} held-out test pairs:")
        print(f"  chrF  {report['chrf']:6.2f}  ({report['signatures']['chrf']})")
        print(f"  exact {report['exact_match']:6.2f}%")
        for source, translation in report["examples"]:
            print(f"  {source:28s} -> {translation}")
    print(f'\ntry it: .venv/bin/tandem translate {reports["attention"]["model_dir"]} "forty-two"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
