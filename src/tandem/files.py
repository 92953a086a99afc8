"""Files replaced whole or not at all, and the lock that keeps a directory to one trainer."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no training lock
    fcntl = None

from tandem.errors import TandemError

LOCK_TRIES = 20  # 50 ms apart: outlasts another process's look at the lock (being_trained)
_HELD: set[Path] = set()  # directories whose training_lock this process holds


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(temporary_path)`, flush it to disk, then rename it over `path`.

    A reader sees the old file or the new one, never half of one. The temporary file keeps
    `path`'s suffix, because some writers (Keras's `.keras` archives) check it.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        write(temporary)
        fsync_file(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_dir(path.parent)


def write_text_atomically(path: Path, text: str) -> None:
    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_json_atomically(path: Path, data: dict) -> None:
    write_text_atomically(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Make renames inside directory `path` durable (a no-op where directories can't be opened)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def make_directory(path: Path) -> Path:
    """Create directory `path` and its parents, unless it exists; say why it cannot be made.

    Raises:
        TandemError: `path` is a file, or cannot be created (a parent that is a file, no
            permission, a read-only disk).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise TandemError(f"{path}: exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TandemError(f"{path}: cannot create the directory: {exc.strerror}") from None
    return path


@contextlib.contextmanager
def training_lock(path: Path, create: bool) -> Iterator[None]:
    """Keep `path` to this process while it trains: another trainer, or `average`, is refused.

    The lock is the kernel's (`flock` on the directory itself), so it ends with the process
    however that ends, kill -9 included, and nothing is written for it. With `create`, the
    directory is made first (`make_directory`); a missing directory is left to the caller
    to report. Where `fcntl` is missing (Windows), there is no lock.

    Raises:
        TandemError: another process holds the lock.
    """
    if create:
        make_directory(path)
    if fcntl is None or not path.is_dir():
        yield
        return
    descriptor = os.open(path, os.O_RDONLY)
    # A few tries: `being_trained` takes the lock shared for a moment.
    for attempt in range(LOCK_TRIES):
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt == LOCK_TRIES - 1:
                os.close(descriptor)
                raise TandemError(
                    f"{path}: another tandem process is training in this directory (or "
                    "averaging its model); wait for it to end, or use another directory"
                ) from None
            time.sleep(0.05)
    held = path.resolve()
    _HELD.add(held)
    try:
        yield
    finally:
        _HELD.discard(held)
        os.close(descriptor)  # releases the lock


def being_trained(path: Path) -> bool:
    """Whether another process holds `path`'s `training_lock` now."""
    if fcntl is None or Path(path).resolve() in _HELD:
        return False
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)


def tsv_field(text: str) -> str:
    """A tab, newline or carriage return in a field would break its row: escaped as \\t,
    \\n, \\r, and a backslash as \\\\ (the escapes of PostgreSQL's text format)."""
    return text.translate(TSV_ESCAPES)


TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def write_tsv_atomically(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A header line and one line per row, each field escaped by `tsv_field`, written whole."""
    lines = ["\t".join(tsv_field(field) for field in row) for row in [header, *rows]]
    write_text_atomically(path, "\n".join(lines) + "\n")
