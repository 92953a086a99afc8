"""The command line's streams: lines read ahead from stdin, results in text, TSV or JSON on
stdout, and one-line messages on stderr, all in UTF-8 whatever the locale."""

from __future__ import annotations

import contextlib
import contextvars
import json
import queue
import sys
import threading
import time
import warnings
from collections.abc import Iterator

from tandem.errors import OverlongSourceWarning, TandemError
from tandem.files import tsv_field


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


def require_stdout() -> None:
    """Results go to stdout: refuse to compute them for nowhere (`>&-`; print would drop them)."""
    if sys.stdout is None:
        raise TandemError("standard output is closed: there is nowhere to write the results")


def say_skipped(skipped: int, path) -> None:
    """What --skip-bad-lines left out, on stderr (train and evaluate)."""
    print(f"skipped {count(skipped, 'bad line')} in {path}", file=sys.stderr)


def utf8(text: str) -> str:
    """`text` as UTF-8 can hold it: bytes that were not UTF-8 (which Python keeps in command
    lines and paths as lone surrogates) become U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def utf8_streams() -> None:
    """Write UTF-8 whatever the locale, as tandem reads it: a translation is never lost to an
    ASCII or Latin-1 stdout, and a message on stderr never fails on a character."""
    for stream, errors in ((sys.stdout, "strict"), (sys.stderr, "backslashreplace")):
        if stream is not None and hasattr(stream, "reconfigure"):
            stream.reconfigure(encoding="utf-8", errors=errors)


def count(n: int, noun: str) -> str:
    """`1 epoch`, `2 epochs`."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def print_translation(result, output_format: str, nbest: int) -> None:
    """One source's translation on stdout: json one object, tsv a row per hypothesis, text a
    line per hypothesis and empty lines up to `nbest`, so that every source has as many."""
    if output_format == "json":
        hypotheses = [{"text": h.text, "score": h.score} for h in result.hypotheses]
        row = {"source": result.source, "translation": result.text, "hypotheses": hypotheses}
        print(json.dumps(row, ensure_ascii=False))
    elif output_format == "tsv":
        for h in result.hypotheses:
            score = "" if h.score is None else f"{h.score:.4f}"
            print(f"{tsv_field(result.source)}\t{tsv_field(h.text)}\t{score}")
    else:
        for h in result.hypotheses:
            print(h.text)
        print("\n" * (nbest - len(result.hypotheses)), end="")
    sys.stdout.flush()


# How translate names a text in warnings (its argument, or its file and line); None elsewhere.
TEXT_PLACE: contextvars.ContextVar = contextvars.ContextVar("text_place", default=None)


@contextlib.contextmanager
def one_line_warnings():
    """Warnings (a truncated overlong source, say) as `tandem: warning: ...`, one line each,
    written above a progress bar rather than into it."""
    from tqdm import tqdm

    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        place = TEXT_PLACE.get()
        if isinstance(message, OverlongSourceWarning) and message.number and place:
            message = f"{place(message.number)}: {message.detail}"
        tqdm.write(f"tandem: warning: {message}", file=sys.stderr if file is None else file)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous
