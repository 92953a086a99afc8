"""Command line: small subcommands, each calling one library function and returning an exit code."""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import dataclasses
import json
import os
import queue
import re
import shlex
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence

from tandem import __version__, compile_cache
from tandem.allocator import relaunch
from tandem.config import (
    ATTENTIONS,
    CELLS,
    FAMILIES,
    INPUTS,
    LR_SCHEDULES,
    OPTIMIZERS,
    OVERLONG,
    TOKEN_KINDS,
    ConfigError,
    DataConfig,
    DecodeConfig,
    ModelConfig,
    TrainConfig,
)
from tandem.errors import DataError, OverlongSourceError, OverlongSourceWarning, TandemError

DATA, MODEL, TRAIN, DECODE = DataConfig(), ModelConfig(), TrainConfig(), DecodeConfig()


def train_config(args: argparse.Namespace):
    """The Config the train flags ask for, over --config, the resumed run's config, or defaults."""
    from tandem.config import Config
    from tandem.training.resume import saved_config

    if args.config:
        config = Config.load(args.config)
    elif args.resume:
        config = saved_config(args.output)  # so --resume alone continues with the run's config
    else:
        config = Config()
    if args.preset == "seed":
        if args.config and config.model != ModelConfig():
            raise TandemError(
                f"{args.config}: sets model options, and --preset seed replaces them all with "
                "the example's model; drop one of the two (flags such as --latent-dim still "
                "change the preset)"
            )
        if args.family not in (None, ModelConfig.seed().family):
            raise TandemError(
                f"--preset seed is the example's {ModelConfig.seed().family} model; it does not "
                f"combine with --family {args.family}"
            )
        config = dataclasses.replace(config, model=ModelConfig.seed())
    config = config.replace(
        "data",
        max_samples=args.max_samples,
        max_source_length=args.max_source_length,
        max_target_length=args.max_target_length,
        skip_bad_lines=args.skip_bad_lines or None,
        source_tokens=args.source_tokens,
        target_tokens=args.target_tokens,
        spm_vocab_size=args.spm_vocab_size,
    )
    family = args.family or config.model.family
    config = config.replace(
        "model",
        family=args.family,
        latent_dim=args.latent_dim,
        cell=args.cell,
        inputs=args.inputs,
        # A transformer's embeddings are as wide as the model unless said otherwise.
        embedding_dim=(
            args.embedding_dim
            if args.embedding_dim is not None or family != "transformer"
            else args.latent_dim
        ),
        mask_padding=False if args.no_masking else None,
        num_layers=args.layers,
        dropout=args.dropout,
        embedding_dropout=args.embedding_dropout,
        output_dropout=args.output_dropout,
        bidirectional=args.bidirectional or None,
        attention=args.attention,
        input_feeding=args.input_feeding or None,
        heads=args.heads,
        ff_dim=args.ff_dim,
    )
    return config.replace(
        "train",
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        validation_split=args.validation_split,
        patience=args.patience,
        seed=args.seed,
        gradient_clip_norm=args.gradient_clip_norm,
        label_smoothing=args.label_smoothing,
        lr_schedule=args.lr_schedule,
        warmup_steps=args.warmup_steps,
        adam_beta_2=args.adam_beta_2,
        lr_patience=args.lr_patience,
        lr_factor=args.lr_factor,
        score_every=args.score_every,
        average_last=args.average_last,
    )


def resume_command(argv: Sequence[str]) -> str:
    """The train command line that resumes the run `argv` started: --resume added, any
    --overwrite (or an abbreviation of it) left out."""
    kept = [arg for arg in argv if not (len(arg) >= 4 and "--overwrite".startswith(arg))]
    if "--resume" not in kept:
        kept.append("--resume")
    return shlex.join(["tandem", *kept])


def cmd_train(args: argparse.Namespace) -> int:
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
        _say_skipped(data.skipped, data.path)
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
        f"trained {_count(len(result.history), 'epoch')} on {result.train_pairs} pairs "
        + (f"(resumed after epoch {result.initial_epoch}; " if result.initial_epoch else "(")
        + f"{result.seconds_per_epoch:.1f} s/epoch, loss {last['loss']:.4f}"
        + (f", val_loss {last['val_loss']:.4f}" if "val_loss" in last else "")
        + f"); {kept} written to {result.model_dir}"
        + (
            f"; left out {_count(result.filtered_pairs, 'pair')} over the length limits"
            if result.filtered_pairs
            else ""
        ),
        file=sys.stderr,
    )
    return 0


def decode_config(args: argparse.Namespace):
    """The DecodeConfig the translate/evaluate flags ask for (unset flags keep its defaults)."""
    from tandem.config import DecodeConfig

    if args.beam is not None and args.sample:
        raise TandemError("--beam and --sample are two strategies: choose one")
    for names, flag, chosen in (
        (("temperature", "top_k", "seed"), "--sample", args.sample),
        (("alpha",), "--beam", args.beam is not None),
    ):
        unused = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is not None]
        if unused and not chosen:
            raise TandemError(f"{', '.join(unused)}: for {flag} only, which is not chosen")
    strategy = "beam" if args.beam else "sample" if args.sample else None
    options = {
        "strategy": strategy,
        "beam_size": args.beam,
        "nbest": args.nbest,
        "alpha": args.alpha,
        "temperature": args.temperature,
        "top_k": args.top_k,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "overlong": getattr(args, "overlong", None),
    }
    return DecodeConfig(**{k: v for k, v in options.items() if v is not None})


def cmd_translate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from tandem.data.reading import read_lines
    from tandem.translator import Translator

    _require_stdout()
    decode = decode_config(args)
    if args.text and args.input:
        raise TandemError("give texts as arguments or a file with --input, not both")
    for number, text in enumerate(args.text, 1):
        if text != _utf8(text):  # as a file's line that is not UTF-8 is refused
            raise TandemError(
                f"argument {number} is not valid UTF-8: {_utf8(text)[:40]!r} (tandem reads "
                "and writes UTF-8, whatever the locale)"
            )
    translator = Translator.from_dir(args.model_dir)
    lines = None if args.text else ReadAhead(text for _, text in read_lines(args.input or "-"))
    # Warnings about a text name it as errors do: its argument, or its file and line.
    source = args.input or "<stdin>"
    place = _TEXT_PLACE.set(
        (lambda n: f"argument {n}") if args.text else (lambda n: f"{source}:{n}")
    )
    texts = iter(args.text) if lines is None else iter(lines)
    show = sys.stderr.isatty() if args.progress == "auto" else args.progress == "on"
    # Counts lines translated (written out), not lines read ahead.
    progress = tqdm(desc="translating", unit=" lines", disable=not show, file=sys.stderr)
    more_ready = None if lines is None else lines.more_ready
    try:
        with progress:
            for result in translator.translate_stream(texts, decode, more_ready=more_ready):
                _print_translation(result, args.format, decode.nbest)
                progress.update()
                if lines is not None and not lines.more_ready(wait=0):
                    sys.stdout.flush()  # whoever feeds the input may be waiting for this
    except OverlongSourceError as exc:  # named by argument, or by file (or stdin) and line
        if args.text:
            raise TandemError(f"argument {exc.number}: {exc.message}") from None
        raise DataError(source, exc.message, exc.number) from None
    finally:
        _TEXT_PLACE.reset(place)
    return 0


class ReadAhead:
    """Lines read by a thread of their own, so that the translator can tell whether the next
    one is there: a file is translated a full window at a time, while lines typed at a
    terminal or fed one by one through a pipe are answered as they come.

    Args:
        texts: the lines; an error reading them is raised where they are iterated.
        limit: most lines read ahead (memory stays bounded).
    """

    _END = object()

    def __init__(self, texts: Iterator[str], limit: int = 65536):
        self._queue: queue.Queue = queue.Queue(maxsize=limit)
        threading.Thread(target=self._read, args=(texts,), daemon=True).start()

    def _read(self, texts: Iterator[str]) -> None:
        try:
            for text in texts:
                self._queue.put(text)
            self._queue.put(self._END)
        except BaseException as exc:  # a DataError (file and line), an OSError
            self._queue.put(exc)

    def __iter__(self) -> Iterator[str]:
        while (item := self._queue.get()) is not self._END:
            if isinstance(item, BaseException):
                raise item
            yield item

    def more_ready(self, wait: float = 0.05) -> bool:
        """Whether the next line (or the end of the input) has been read, after waiting up
        to `wait` seconds for it."""
        deadline = time.monotonic() + wait
        while self._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self._queue.empty()


def _require_stdout() -> None:
    """Results go to stdout: refuse to compute them for nowhere (`>&-`; print would drop them)."""
    if sys.stdout is None:
        raise TandemError("standard output is closed: there is nowhere to write the results")


def _say_skipped(count: int, path) -> None:
    """What --skip-bad-lines left out, on stderr (train and evaluate)."""
    print(f"skipped {_count(count, 'bad line')} in {path}", file=sys.stderr)


def _utf8(text: str) -> str:
    """`text` as UTF-8 can hold it: bytes that were not UTF-8 (which Python keeps in command
    lines and paths as lone surrogates) become U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _utf8_streams() -> None:
    """Write UTF-8 whatever the locale, as tandem reads it: a translation is never lost to an
    ASCII or Latin-1 stdout, and a message on stderr never fails on a character."""
    for stream, errors in ((sys.stdout, "strict"), (sys.stderr, "backslashreplace")):
        if stream is not None and hasattr(stream, "reconfigure"):
            stream.reconfigure(encoding="utf-8", errors=errors)


def _count(n: int, noun: str) -> str:
    """`1 epoch`, `2 epochs`."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _print_translation(result, output_format: str, nbest: int) -> None:
    """One source's translation on stdout: json one object, tsv a row per hypothesis, text a
    line per hypothesis and empty lines up to `nbest`, so that every source has as many."""
    if output_format == "json":
        hypotheses = [{"text": h.text, "score": h.score} for h in result.hypotheses]
        row = {"source": result.source, "translation": result.text, "hypotheses": hypotheses}
        print(json.dumps(row, ensure_ascii=False))
    elif output_format == "tsv":
        for h in result.hypotheses:
            score = "" if h.score is None else f"{h.score:.4f}"
            print(f"{_tsv_field(result.source)}\t{_tsv_field(h.text)}\t{score}")
    else:
        for h in result.hypotheses:
            print(h.text)
        print("\n" * (nbest - len(result.hypotheses)), end="")
    sys.stdout.flush()


def _tsv_field(text: str) -> str:
    """A tab, newline or carriage return in a field would break its row: escaped as \\t,
    \\n, \\r, and a backslash as \\\\ (the escapes of PostgreSQL's text format)."""
    return text.translate(TSV_ESCAPES)


TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tandem.evaluation import evaluate
    from tandem.translator import Translator

    _require_stdout()
    if args.nbest not in (None, 1):
        raise TandemError("--nbest: evaluate scores one output per source (the best)")
    translator = Translator.from_dir(args.model_dir)
    report = evaluate(
        translator,
        args.data,
        decode_config(args),
        target_path=args.target,
        eligible_only=args.eligible_only,
        skip_bad_lines=args.skip_bad_lines,
        max_samples=args.max_samples,
        multi_reference=args.multi_reference,
    )
    if report["skipped_lines"]:
        _say_skipped(
            report["skipped_lines"], f"{args.data} + {args.target}" if args.target else args.data
        )
    if args.format == "json":
        # Paths are the bytes they were given: ones that are not UTF-8 are shown with U+FFFD.
        report = {k: _utf8(v) if isinstance(v, str) else v for k, v in report.items()}
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(f"chrF   {report['chrf']:6.2f}  {report['signatures']['chrf']}")
        print(f"BLEU   {report['bleu']:6.2f}  {report['signatures']['bleu']}")
        print(f"exact  {report['exact_match']:6.2f}% of {report['n_sources']} sources")
        if "wer" in report:  # word targets (phonemes, words)
            print(f"WER    {report['wer']:6.2f}% (wrong outputs; right = any reference)")
            print(f"PER    {report['per']:6.2f}% (token edits to the closest reference)")
    return 0


def cmd_average(args: argparse.Namespace) -> int:
    from tandem.training import average_model_dir

    epochs = average_model_dir(args.model_dir, args.last)
    which = f"epoch {epochs[0]}" if len(epochs) == 1 else f"epochs {', '.join(map(str, epochs))}"
    print(f"{args.model_dir}: the model is now the mean of {which}", file=sys.stderr)
    return 0


def add_decode_arguments(parser: argparse.ArgumentParser, nbest: bool = True) -> None:
    """The search options; without `nbest`, --nbest is still parsed (to be refused by name)
    but not advertised."""
    group = parser.add_argument_group("decoding")
    group.add_argument("--beam", type=int, metavar="N", help="beam search with N beams")
    group.add_argument(
        "--nbest",
        type=int,
        help=f"hypotheses per source, beam only (default: {DECODE.nbest})"
        if nbest
        else argparse.SUPPRESS,
    )
    group.add_argument(
        "--alpha", type=float, help=f"beam length normalisation (default: {DECODE.alpha})"
    )
    group.add_argument("--sample", action="store_true", help="sample instead of searching")
    group.add_argument(
        "--temperature", type=float, help=f"sampling temperature (default: {DECODE.temperature})"
    )
    group.add_argument("--top-k", type=int, help="sample among the k most probable tokens")
    group.add_argument(
        "--seed",
        type=int,
        help=f"sampling seed: the same seed and input draw the same samples, at any "
        f"--batch-size (default: {DECODE.seed})",
    )
    group.add_argument(
        "--batch-size", type=int, help=f"sentences decoded together (default: {DECODE.batch_size})"
    )
    group.add_argument(
        "--max-length",
        type=int,
        help="most tokens generated per sentence, the end token included (default: the "
        "example's max_decoder_seq_length: the longest training target's tokens + 2)",
    )


_DASHES = "\0--"  # stands for a literal `--` among translate's texts while argparse parses


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """`parser.parse_args`, except that translate's texts and options may come in any order.

    argparse gives translate's texts (a `*` positional after the model directory) nothing as
    soon as an option comes between them (`translate M --beam 2 "Go."`), and then refuses the
    texts; parsed intermixed, options and texts mix as they do in other commands.
    """
    if argv[:1] == ["translate"]:
        rest = argv[1:]
        if "--" in rest:
            # Everything after the first `--` is a text, `--` included; argparse would drop
            # every later `--` and so misalign the outputs. A command line never holds NUL.
            end = rest.index("--") + 1
            rest = rest[:end] + [_DASHES if arg == "--" else arg for arg in rest[end:]]
        args = parser.subcommands["translate"].parse_intermixed_args(rest)
        args.model_dir = "--" if args.model_dir == _DASHES else args.model_dir
        args.text = ["--" if text == _DASHES else text for text in args.text]
        args.command = "translate"
    else:
        args = parser.parse_args(argv)
    args.argv = argv
    return args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tandem", description="Sequence-to-sequence learning in Keras 3."
    )
    parser.add_argument("--version", action="version", version=f"tandem {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.subcommands = commands.choices  # name -> parser (see parse_args)

    train = commands.add_parser("train", help="train a model on parallel data")
    train.add_argument("data", help="source<TAB>target file, fra-eng.zip, or a source text file")
    train.add_argument("--target", help="target text file, line-aligned with DATA")
    train.add_argument("-o", "--output", required=True, help="model directory to write")
    train.add_argument("--config", help="config.json to start from (flags override it)")
    train.add_argument(
        "--max-samples",
        type=int,
        help="the pairs of the first N valid lines (bad lines that --skip-bad-lines skips do "
        "not count; default: all)",
    )
    train.add_argument("--max-source-length", type=int, help="drop pairs with longer sources")
    train.add_argument("--max-target-length", type=int, help="drop pairs with longer targets")
    train.add_argument("--skip-bad-lines", action="store_true", help="skip malformed lines")
    train.add_argument(
        "--source-tokens",
        choices=TOKEN_KINDS,
        help=f"source tokens (default: {DATA.source_tokens})",
    )
    train.add_argument(
        "--target-tokens",
        choices=TOKEN_KINDS,
        help=f"target tokens (default: {DATA.target_tokens})",
    )
    model = train.add_argument_group("model")
    model.add_argument(
        "--preset",
        choices=("seed",),
        help="seed: the classic Keras example's model exactly (one-hot inputs, one LSTM layer "
        "per side, padding not masked); other model flags still apply on top",
    )
    model.add_argument(
        "--family",
        choices=FAMILIES,
        help="rnn: recurrent encoder and decoder (the flags below); transformer: pre-norm "
        f"Transformer of width --latent-dim (default: {MODEL.family})",
    )
    model.add_argument("--latent-dim", type=int, help=f"state size (default: {MODEL.latent_dim})")
    model.add_argument("--cell", choices=CELLS, help=f"recurrent cell (default: {MODEL.cell})")
    model.add_argument(
        "--inputs", choices=INPUTS, help=f"token representation (default: {MODEL.inputs})"
    )
    model.add_argument(
        "--embedding-dim", type=int, help=f"embedding size (default: {MODEL.embedding_dim})"
    )
    model.add_argument(
        "--no-masking", action="store_true", help="train on padding as the classic example does"
    )
    model.add_argument(
        "--layers", type=int, help=f"stacked layers per side (default: {MODEL.num_layers})"
    )
    model.add_argument(
        "--dropout", type=float, help=f"dropout between layers (default: {MODEL.dropout})"
    )
    model.add_argument(
        "--embedding-dropout",
        type=float,
        help=f"dropout on the token embeddings (default: {MODEL.embedding_dropout})",
    )
    model.add_argument(
        "--output-dropout",
        type=float,
        help=f"dropout before the output softmax (default: {MODEL.output_dropout})",
    )
    model.add_argument("--bidirectional", action="store_true", help="bidirectional encoder")
    model.add_argument(
        "--attention", choices=ATTENTIONS, help=f"attention score (default: {MODEL.attention})"
    )
    model.add_argument(
        "--input-feeding", action="store_true", help="feed attentional vectors back (Luong)"
    )
    model.add_argument(
        "--heads", type=int, help=f"transformer: attention heads (default: {MODEL.heads})"
    )
    model.add_argument(
        "--ff-dim",
        type=int,
        help=f"transformer: feed-forward inner width (default: {MODEL.ff_dim})",
    )
    train.add_argument(
        "--spm-vocab-size",
        type=int,
        help="most SentencePiece pieces per spm side; small data gets fewer "
        f"(default: {DATA.spm_vocab_size})",
    )
    train.add_argument("--epochs", type=int, help=f"epochs (default: {TRAIN.epochs})")
    train.add_argument("--batch-size", type=int, help=f"batch size (default: {TRAIN.batch_size})")
    train.add_argument(
        "--optimizer", choices=OPTIMIZERS, help=f"optimizer (default: {TRAIN.optimizer})"
    )
    train.add_argument("--learning-rate", type=float, help="learning rate (default: Keras's)")
    train.add_argument(
        "--validation-split",
        type=float,
        help=f"held-out fraction (default: {TRAIN.validation_split})",
    )
    train.add_argument(
        "--patience",
        type=int,
        help="early stopping after N epochs without a better val_loss; the model keeps the "
        "best epoch's weights (default: off)",
    )
    train.add_argument("--seed", type=int, help=f"random seed (default: {TRAIN.seed})")
    train.add_argument(
        "--gradient-clip-norm",
        type=float,
        metavar="NORM",
        help="clip each gradient tensor to this L2 norm (default: off)",
    )
    train.add_argument(
        "--label-smoothing",
        type=float,
        metavar="S",
        help=f"label smoothing of the loss, in [0, 1) (default: {TRAIN.label_smoothing})",
    )
    train.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        help="plateau: cut the learning rate when val_loss stops falling; inverse_sqrt: warm "
        "up to --learning-rate, then decay as 1/sqrt(step) (transformers) "
        f"(default: {TRAIN.lr_schedule})",
    )
    train.add_argument(
        "--warmup-steps",
        type=int,
        metavar="N",
        help=f"inverse_sqrt: warm-up steps (default: {TRAIN.warmup_steps})",
    )
    train.add_argument(
        "--adam-beta-2",
        type=float,
        metavar="B",
        help=f"adam: squared-gradient decay (default: {TRAIN.adam_beta_2})",
    )
    train.add_argument(
        "--lr-patience",
        type=int,
        metavar="N",
        help=f"plateau: flat epochs before a cut (default: {TRAIN.lr_patience})",
    )
    train.add_argument(
        "--lr-factor",
        type=float,
        metavar="F",
        help=f"plateau: multiply the learning rate by F at a cut (default: {TRAIN.lr_factor})",
    )
    train.add_argument(
        "--average-last",
        type=int,
        metavar="N",
        help="save the average of the weights of the N epochs ending at the kept one (the "
        "best with --patience, else the last); may be set when resuming (default: off)",
    )
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
    train.add_argument(
        "--score-every",
        type=int,
        metavar="N",
        help="greedy-decode the validation split every N epochs and log val_chrf "
        "(val_wer/val_per for word targets); default: off",
    )
    train.add_argument(
        "--devices",
        metavar="N|all",
        help="data-parallel training on N devices (or all JAX sees), each taking an equal "
        "share of every batch; default: one device",
    )
    train.add_argument("-q", "--quiet", action="store_true", help="no per-epoch progress")
    train.set_defaults(run=cmd_train)

    translate = commands.add_parser("translate", help="translate text (arguments or stdin)")
    translate.add_argument("model_dir", help="model directory written by tandem train")
    translate.add_argument(
        "text", nargs="*", default=[], help="texts to translate (default: stdin lines)"
    )
    translate.add_argument("-i", "--input", help="file of sentences, one per line (default: stdin)")
    add_decode_arguments(translate)
    translate.add_argument(
        "--overlong",
        choices=OVERLONG,
        help="sources longer than any seen in training: truncate with a warning or stop with "
        f"an error (default: {DECODE.overlong})",
    )
    translate.add_argument(
        "--format",
        choices=("text", "tsv", "json"),
        default="text",
        help="text: one line per hypothesis; tsv: source, text, score (the model's "
        "log-probability of the text; tabs, newlines and backslashes escaped as \\t, \\n, "
        "\\\\); json: one object per source with all hypotheses",
    )
    translate.add_argument(
        "--progress",
        choices=("auto", "on", "off"),
        default="auto",
        help="progress bar on stderr (auto: when stderr is a terminal)",
    )
    translate.set_defaults(run=cmd_translate)

    evaluate = commands.add_parser("evaluate", help="score a model with chrF, BLEU, exact match")
    evaluate.add_argument("model_dir", help="model directory written by tandem train")
    evaluate.add_argument("data", help="parallel data with references")
    evaluate.add_argument("--target", help="target text file, line-aligned with DATA")
    evaluate.add_argument(
        "--eligible-only",
        action="store_true",
        help="score only sources within the model's training range",
    )
    add_decode_arguments(evaluate, nbest=False)  # evaluate scores the best output only
    evaluate.add_argument(
        "--multi-reference",
        action="store_true",
        help="every column after the source is a reference (WORD<TAB>pron1<TAB>pron2); "
        "by default only the second is and later ones (Tatoeba's attribution) are ignored",
    )
    evaluate.add_argument(
        "--max-samples",
        type=int,
        help="the sources of the first N valid lines (bad lines that --skip-bad-lines skips do "
        "not count; default: all)",
    )
    evaluate.add_argument("--skip-bad-lines", action="store_true", help="skip malformed lines")
    evaluate.add_argument("--format", choices=("text", "json"), default="text")
    evaluate.set_defaults(run=cmd_evaluate)

    average = commands.add_parser(
        "average",
        help="save the mean of the last N epochs' weights (snapshots kept by --average-last)",
    )
    average.add_argument("model_dir", help="model directory written by tandem train")
    average.add_argument(
        "--last",
        type=int,
        required=True,
        metavar="N",
        help="average the N epochs ending at the kept one (the best with --patience, else "
        "the last); 1 restores that epoch alone",
    )
    average.set_defaults(run=cmd_average)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user mistakes print one line to stderr and return 2.

    Run as a program (no `argv`), it first re-runs itself with the allocator settings of
    `tandem.allocator`, which glibc reads only when a process starts.
    """
    command = args = None
    try:
        if argv is None and sys.executable:
            relaunch([sys.executable, "-m", "tandem", *sys.argv[1:]])
        if argv is None:
            _utf8_streams()
        args = parse_args(build_parser(), list(sys.argv[1:] if argv is None else argv))
        command = args.command
        _check_backend(os.environ.get("KERAS_BACKEND", "jax"))
        with _one_line_warnings():
            compile_cache.enable()
            code = args.run(args)
        if code in (130, 143) and argv is None:  # training was interrupted: on the way out
            _exit_at_next_signal()
        return code
    except TandemError as exc:
        message = str(exc)
        if isinstance(exc, ConfigError) and args is not None:
            message = _as_flags(message, args)
        print(f"tandem: error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        if argv is None:  # the program, about to exit (not a caller's process)
            _exit_at_next_signal()
        print("tandem: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a full disk, a read-only file system, closed or full output
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"tandem: error: {where}{exc.strerror or exc}", file=sys.stderr)
        if argv is None:  # the program, about to exit (not a caller's stdout)
            _drop_unwritten_output()
        return 1
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        decoding = command in ("translate", "evaluate")
        print(
            f"tandem: error: {OUT_OF_MEMORY_DECODING if decoding else OUT_OF_MEMORY}",
            file=sys.stderr,
        )
        return 1


# Config keys whose flag has another name.
_FLAG_OF_KEY = {"num_layers": "--layers", "beam_size": "--beam", "mask_padding": "--no-masking"}


def _as_flags(message: str, args: argparse.Namespace) -> str:
    """A ConfigError's `section.key` names, written as the flags given on the command line
    (a key that a --config file or a resumed run set keeps its name)."""
    parser = build_parser().subcommands[args.command]

    def name(match: re.Match) -> str:  # "model.heads = 2" -> "--heads 2"
        flag = _FLAG_OF_KEY.get(match[2], "--" + match[2].replace("_", "-"))
        given = [a for a in parser._actions if flag in a.option_strings]
        value = getattr(args, given[0].dest, None) if given else None
        if value is None or value is False:  # not on the command line (0 was)
            return match[0]
        if match[3] is None or given[0].nargs == 0:  # a switch: its value is the flag itself
            return flag
        return f"{flag} {match[3].strip(chr(39))}"

    return re.sub(
        r"\b(data|model|train|decode)\.([a-z0-9_]+)\b(?: = ('[^']*'|\S+))?", name, message
    )


# Keras's backends, each named after the package it imports.
BACKENDS = ("jax", "torch", "tensorflow", "numpy", "openvino")


def _check_backend(name: str) -> None:
    """Refuse, in one line, a KERAS_BACKEND that Keras would fail to import (a traceback)."""
    import importlib.util

    if name not in BACKENDS:
        raise TandemError(
            f"KERAS_BACKEND={name}: not a Keras backend (one of {', '.join(BACKENDS)})"
        )
    if importlib.util.find_spec(name) is None:
        raise TandemError(
            f"KERAS_BACKEND={name}: {name} is not installed (tandem installs JAX, the "
            "default backend: unset KERAS_BACKEND, or install it)"
        )


def _exit_at_next_signal() -> None:
    """Interrupted, and on the way out: another Ctrl-C or SIGTERM ends the process at once.

    Raised as KeyboardInterrupt while the interpreter shuts down, it can cut JAX's exit
    handlers short and crash the process (a segmentation fault instead of exit status 130).
    Checkpoints are written to a temporary name and renamed, so stopping anywhere is safe.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: os._exit(130))


def _drop_unwritten_output() -> None:
    """Point stdout at /dev/null, so that Python's flush at exit does not fail (and print a
    second error) on output that could not be written."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


# How translate names a text in warnings (its argument, or its file and line); None elsewhere.
_TEXT_PLACE: contextvars.ContextVar = contextvars.ContextVar("text_place", default=None)


@contextlib.contextmanager
def _one_line_warnings():
    """Warnings (a truncated overlong source, say) as `tandem: warning: ...`, one line each,
    written above a progress bar rather than into it."""
    from tqdm import tqdm

    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        place = _TEXT_PLACE.get()
        if isinstance(message, OverlongSourceWarning) and message.number and place:
            message = f"{place(message.number)}: {message.detail}"
        tqdm.write(f"tandem: warning: {message}", file=sys.stderr if file is None else file)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


OUT_OF_MEMORY = (
    "out of memory; the longest sentences set the width of their batches: limit them with "
    "--max-source-length and --max-target-length, or lower --batch-size"
)
# translate and evaluate: a search holds batch x beam hypotheses of up to max_length tokens.
OUT_OF_MEMORY_DECODING = (
    "out of memory; a search holds --batch-size sources x --beam hypotheses of up to "
    "--max-length tokens: lower one of them"
)


def _out_of_memory(exc: BaseException) -> bool:
    """Python's MemoryError, or the backend's allocation failure (XLA: RESOURCE_EXHAUSTED, or
    on CPU an INTERNAL error saying `Out of memory allocating N bytes`)."""
    text = str(exc)
    return (
        isinstance(exc, MemoryError)
        or "RESOURCE_EXHAUSTED" in text
        or "Out of memory allocating" in text
    )
