"""`tandem train`: train a model on parallel data."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from collections.abc import Sequence

from tandem.cli.io import count, say_skipped
from tandem.cli.options import add_options, flag_settings, given
from tandem.config import SECTIONS, Config, DataConfig, ModelConfig, TrainConfig
from tandem.errors import TandemError


def add_parser(commands) -> None:
    """The train subcommand: its own flags, and the config settings in --help's order."""
    train = commands.add_parser("train", help="train a model on parallel data")
    train.add_argument("data", help="source<TAB>target file, fra-eng.zip, or a source text file")
    train.add_argument("--target", help="target text file, line-aligned with DATA")
    train.add_argument("-o", "--output", required=True, help="model directory to write")
    train.add_argument("--config", help="config.json to start from (flags override it)")
    add_options(train, DataConfig, "max_samples", "max_source_length", "max_target_length",
                "skip_bad_lines", "source_tokens", "target_tokens")  # fmt: skip
    model = train.add_argument_group("model")
    model.add_argument(
        "--preset",
        choices=("seed",),
        help="seed: the classic Keras example's model exactly (one-hot inputs, one LSTM layer "
        "per side, padding not masked: the loss and accuracy count the padded steps, as the "
        "example's do); other model flags still apply on top",
    )
    add_options(model, ModelConfig, "family", "latent_dim", "cell", "inputs", "embedding_dim",
                "mask_padding", "num_layers", "dropout", "embedding_dropout", "output_dropout",
                "bidirectional", "attention", "input_feeding", "init", "heads", "ff_dim")  # fmt: skip
    add_options(train, DataConfig, "spm_vocab_size")
    add_options(train, TrainConfig, "epochs", "batch_size", "optimizer", "learning_rate",
                "validation_split", "patience", "seed", "gradient_clip_norm", "label_smoothing",
                "lr_schedule", "warmup_steps", "adam_beta_2", "lr_patience", "lr_factor",
                "average_last")  # fmt: skip
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --output from its last checkpoint (same data, same "
        "options): an interrupted run, or a finished one with --epochs above those it did",
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the model or unfinished run in --output (refused otherwise)",
    )
    add_options(train, TrainConfig, "score_every", "keep_checkpoints", "tensorboard")
    train.add_argument(
        "--devices",
        metavar="N|all",
        help="data-parallel training on N devices (or all JAX sees), each taking an equal "
        "share of every batch; default: one device",
    )
    train.add_argument("-q", "--quiet", action="store_true", help="no per-epoch progress")
    train.set_defaults(run=run)


def train_config(args: argparse.Namespace) -> Config:
    """The Config the train flags ask for, over --config, the resumed run's config, or defaults."""
    from tandem.training.resume import saved_config

    if args.config:
        config = Config.load(args.config)
    elif args.resume:
        config = saved_config(args.output)  # so --resume alone continues with the run's config
    else:
        config = Config()
    family = given(args, ModelConfig, "family")
    if args.preset == "seed":
        if args.config and config.model != ModelConfig():
            raise TandemError(
                f"{args.config}: sets model options, and --preset seed replaces them all with "
                "the example's model; drop one of the two (flags such as --latent-dim still "
                "change the preset)"
            )
        if family not in (None, ModelConfig.seed().family):
            raise TandemError(
                f"--preset seed is the example's {ModelConfig.seed().family} model; it does not "
                f"combine with --family {family}"
            )
        config = dataclasses.replace(config, model=ModelConfig.seed())
    for name, section in SECTIONS.items():
        changes = flag_settings(args, section)
        if section is ModelConfig and (family or config.model.family) == "transformer":
            # A transformer's embeddings are as wide as the model unless said otherwise.
            changes.setdefault("embedding_dim", changes.get("latent_dim"))
        config = config.replace(name, **changes)
    return config


def resume_command(argv: Sequence[str]) -> str:
    """The train command line that resumes the run `argv` started: --resume added, any
    --overwrite (or an abbreviation of it) left out."""
    kept = [arg for arg in argv if not (len(arg) >= 4 and "--overwrite".startswith(arg))]
    if "--resume" not in kept:
        kept.append("--resume")
    return shlex.join(["tandem", *kept])


def run(args: argparse.Namespace) -> int:
    from tandem.data.reading import read_pairs
    from tandem.training import TrainingInterrupted, train
    from tandem.training.devices import initialize, parse_devices

    if args.resume and args.overwrite:
        raise TandemError(
            "--resume continues the run in --output, --overwrite replaces it: choose one"
        )
    devices = parse_devices(args.devices)
    initialize()  # a multi-host run joins its processes before JAX computes anything
    config = train_config(args)
    data = read_pairs(
        args.data,
        args.target,
        max_samples=config.data.max_samples,
        skip_bad_lines=config.data.skip_bad_lines,
    )
    if data.skipped:
        say_skipped(data.skipped, data.path)
    try:
        result = train(
            data.pairs,
            config,
            args.output,
            resume=args.resume,
            overwrite=args.overwrite,
            verbose=0 if args.quiet else 2,
            devices=devices,
            on_start=None if args.quiet else lambda plan: print(plan.summary(), file=sys.stderr),
        )
    except TrainingInterrupted as exc:
        advice = f"resume with: {resume_command(args.argv)}" if exc.resumable else None
        print(f"tandem: {exc.what}; {advice}" if advice else f"tandem: {exc}", file=sys.stderr)
        return exc.exit_code
    if config.train.average_last and not args.quiet:
        averaged = list(result.averaged_epochs)
        print(f"saved the average of the weights of epochs {averaged}", file=sys.stderr)
    last = result.history[-1]
    kept = f"model of epoch {result.final_epoch}"
    if len(result.averaged_epochs) > 1:
        first, final = result.averaged_epochs[0], result.averaged_epochs[-1]
        kept = f"model averaging {len(result.averaged_epochs)} epochs ({first}-{final})"
    print(
        f"trained {count(len(result.history), 'epoch')} on {result.train_pairs} pairs "
        + (f"(resumed after epoch {result.initial_epoch}; " if result.initial_epoch else "(")
        + f"{result.seconds_per_epoch:.1f} s/epoch, loss {last['loss']:.4f}"
        + (f", val_loss {last['val_loss']:.4f}" if "val_loss" in last else "")
        + f"); {kept} written to {result.model_dir}"
        + (
            f"; left out {count(result.filtered_pairs, 'pair')} over the length limits"
            if result.filtered_pairs
            else ""
        ),
        file=sys.stderr,
    )
    return 0
