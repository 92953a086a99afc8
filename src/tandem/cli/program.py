"""The program around the subcommands: parsing, one-line errors and exit codes."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Sequence

from tandem import compile_cache
from tandem.allocator import relaunch
from tandem.cli.io import one_line_warnings, utf8_streams
from tandem.cli.options import as_flags
from tandem.cli.parser import build_parser, parse_args
from tandem.config import ConfigError
from tandem.errors import TandemError

# Keras's backends, each named after the package it imports.
BACKENDS = ("jax", "torch", "tensorflow", "numpy", "openvino")

OUT_OF_MEMORY = (
    "out of memory; the longest sentences set the width of their batches: limit them with "
    "--max-source-length and --max-target-length, or lower --batch-size"
)
# translate and evaluate: a search holds batch x beam hypotheses of up to max_length tokens.
OUT_OF_MEMORY_DECODING = (
    "out of memory; a search holds --batch-size sources x --beam hypotheses of up to "
    "--max-length tokens: lower one of them"
)


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
            utf8_streams()
        args = parse_args(build_parser(), list(sys.argv[1:] if argv is None else argv))
        command = args.command
        _check_backend(os.environ.get("KERAS_BACKEND", "jax"))
        with one_line_warnings():
            compile_cache.enable()
            code = args.run(args)
        if code in (130, 143) and argv is None:  # training was interrupted: on the way out
            _exit_at_next_signal()
        return code
    except TandemError as exc:
        # A ConfigError names settings as config.json does; those that flags set, by flag.
        message = (
            as_flags(exc, args) if isinstance(exc, ConfigError) and args is not None else str(exc)
        )
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


def _out_of_memory(exc: BaseException) -> bool:
    """Python's MemoryError, or the backend's allocation failure (XLA: RESOURCE_EXHAUSTED, or
    on CPU an INTERNAL error saying `Out of memory allocating N bytes`)."""
    text = str(exc)
    return (
        isinstance(exc, MemoryError)
        or "RESOURCE_EXHAUSTED" in text
        or "Out of memory allocating" in text
    )
