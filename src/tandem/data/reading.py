"""Read sentence pairs (tab layout, manythings zip, aligned files) and plain text lines."""

from __future__ import annotations

import re
import sys
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import BinaryIO

from tandem.errors import DataError, TandemError

_BOM = b"\xef\xbb\xbf"
# How compressed files begin (none of these is valid UTF-8 text, bzip2's block magic aside).
_COMPRESSED = (
    (re.compile(rb"\x1f\x8b"), "gzip"),
    (re.compile(rb"BZh[1-9]1AY&SY"), "bzip2"),
    (re.compile(rb"\xfd7zXZ\x00"), "xz"),
    (re.compile(rb"\x28\xb5\x2f\xfd"), "zstd"),
)
_ABOUT = "_about.txt"  # manythings.org's licence note, shipped next to the data member

# Error locations:
#   plain file      "<path>:<line>: <message>"
#   zip member      "<zip path>!<member>:<line>: <message>"   (e.g. "fra-eng.zip!fra.txt:12: ...")
#   aligned files   the file (source or target) that holds the problem.
# "!" separates archive and member, as in jar: URLs, so ":" stays free for the line number.


@dataclass(frozen=True)
class ParallelData:
    """Sentence pairs read from one data set.

    Attributes:
        pairs: (source, target) pairs in file order.
        skipped: bad lines skipped (only non-zero with skip_bad_lines=True).
        path: what was read, for reports: the file, "<zip>!<member>" or "<source> + <target>".
    """

    pairs: list[tuple[str, str]]
    skipped: int
    path: str


def text_problem(text: str) -> str | None:
    """What keeps `text` from being one sentence of a line of UTF-8 text, or None.

    Files never yield such text (lines end at line breaks; NUL, a lone carriage return and
    invalid UTF-8 are refused as they are read); sentences from Python are checked with this.
    """
    for character, name in (("\n", "line break"), ("\r", "carriage return"), ("\0", "NUL")):
        if character in text:
            return f"a {name} ({character!r}) at character {text.index(character) + 1}"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate, which no UTF-8 file can hold
        return f"a lone surrogate ({text[exc.start]!r}) at character {exc.start + 1}"
    return None


def read_pairs(
    path: str | Path,
    target_path: str | Path | None = None,
    *,
    max_samples: int | None = None,
    skip_bad_lines: bool = False,
    multi_reference: bool = False,
) -> ParallelData:
    """Read sentence pairs from a tab-separated file, a manythings zip or two aligned files.

    Args:
        path: "source<TAB>target[<TAB>...]" lines (extra columns ignored, as Tatoeba's
            attribution), a ".zip" archive holding one such ".txt" member (plus optional
            "_about.txt"), or, with target_path, a file of source sentences, one per line.
        target_path: the file of target sentences aligned line by line with path.
        max_samples: keep only the pairs of the first N valid lines; reading stops there
            (aligned files are still read to their ends, to check that they are aligned).
        skip_bad_lines: skip (and count) bad lines instead of raising; whole-file problems
            (missing file, unreadable zip, unequal aligned files, no pairs at all) still raise.
        multi_reference: every column after the source is a target of it, one pair each
            ("WORD<TAB>pron1<TAB>pron2", as CMUdict's G2P test set); not with target_path.

    Returns:
        The pairs, the number of skipped lines and a label for what was read.

    Raises:
        DataError: bad data, located by file and, for a bad line, its 1-based number.
        TandemError: max_samples below 1, or multi_reference with target_path.
    """
    if max_samples is not None and (type(max_samples) is not int or max_samples < 1):
        raise TandemError(f"max_samples must be an integer of at least 1, got {max_samples!r}")
    if multi_reference and target_path is not None:
        raise TandemError(
            "multiple references are read from the columns of one file, not with a target file"
        )
    _check_file(path)
    if target_path is not None:
        if str(path).lower().endswith(".zip"):
            raise DataError(path, "a zip archive holds source<TAB>target lines: no target file")
        _check_file(target_path)
        label = f"{path} + {target_path}"
        with _open(path) as sources, _open(target_path) as targets:
            rows = _aligned_rows(sources, targets, str(path), str(target_path))
            data = _collect(rows, label, max_samples, skip_bad_lines)
            # A line missing from one file shifts every later line, those kept included:
            # both files are read to their ends, past max_samples too, to compare lengths.
            for _ in rows:
                pass
            return data
    if str(path).lower().endswith(".zip"):
        return _read_zip(str(path), max_samples, skip_bad_lines, multi_reference)
    with _open(path) as stream:
        rows = _tab_rows(stream, str(path), multi_reference)
        return _collect(rows, str(path), max_samples, skip_bad_lines)


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Stream the lines of a UTF-8 text file, one at a time, for translating big files.

    Args:
        path: the file, or "-" for standard input.

    Returns:
        An iterator of (1-based line number, text without its line ending). A leading BOM is
        dropped; empty lines are kept so that output lines stay aligned with input lines.

    Raises:
        DataError: a missing file or directory (at once); invalid UTF-8, a NUL byte or a
            carriage return inside a line (when that line is reached).
    """
    if str(path) == "-":
        if sys.stdin is None:  # started with stdin closed (`<&-`)
            raise DataError("<stdin>", "standard input is closed")
        return _plain_lines(sys.stdin.buffer, "<stdin>")
    _check_file(path)
    return _stream_file(path)


def group_references(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """Group pairs by source: several rows can hold valid translations of one sentence.

    Args:
        pairs: (source, target) pairs.

    Returns:
        Each unique source, in first-occurrence order, with all its targets in file order.
    """
    references: dict[str, list[str]] = {}
    for source, target in pairs:
        references.setdefault(source, []).append(target)
    return list(references.items())


# A line's pairs (several with multi_reference). Line-level problems come back as DataError
# values rather than being raised, so that a generator can go on after one and _collect
# decides whether to raise or skip it.
_Row = list[tuple[str, str]] | DataError


def _collect(
    rows: Iterator[_Row], label: str, max_samples: int | None, skip_bad_lines: bool
) -> ParallelData:
    pairs: list[tuple[str, str]] = []
    skipped = lines = 0
    for row in rows:
        if isinstance(row, DataError):
            if not skip_bad_lines:
                raise row
            skipped += 1
            continue
        pairs.extend(row)
        lines += 1
        if max_samples is not None and lines >= max_samples:
            break  # the caller's `with` closes the file: the rest is never read
    if not pairs:
        detail = f" ({skipped} bad lines skipped)" if skipped else ""
        raise DataError(label, f"no sentence pairs{detail}")
    return ParallelData(pairs=pairs, skipped=skipped, path=label)


def _read_zip(
    path: str, max_samples: int | None, skip_bad_lines: bool, multi_reference: bool
) -> ParallelData:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(path, f"unreadable zip archive: {exc}") from exc
    with archive:
        names = archive.namelist()
        members = [
            name
            for name in names
            if name.lower().endswith(".txt") and name.rsplit("/", 1)[-1] != _ABOUT
        ]
        if len(members) != 1:
            found = ", ".join(names) or "none"
            raise DataError(
                path, f"expected exactly one .txt data member besides {_ABOUT}; members: {found}"
            )
        label = f"{path}!{members[0]}"
        try:
            with archive.open(members[0]) as stream:
                rows = _tab_rows(stream, label, multi_reference)
                return _collect(rows, label, max_samples, skip_bad_lines)
        except (zipfile.BadZipFile, RuntimeError, OSError) as exc:
            # Corrupt data, an unsupported compression or an encrypted member.
            raise DataError(label, f"unreadable zip member: {exc}") from exc


def _tab_rows(stream: BinaryIO, label: str, multi_reference: bool = False) -> Iterator[_Row]:
    for line, raw in _raw_lines(stream, label):
        try:
            text = _decode(raw, label, line)
            if not text:
                raise DataError(label, "empty line: expected source<TAB>target", line)
            columns = text.split("\t")
            if len(columns) < 2:
                raise DataError(label, "line has no tab: expected source<TAB>target", line)
            source = _sentence(columns[0], "source", label, line)
            targets = columns[1:] if multi_reference else columns[1:2]
            yield [(source, _sentence(target, "target", label, line)) for target in targets]
        except DataError as problem:
            yield problem


def _aligned_rows(
    sources: BinaryIO, targets: BinaryIO, source_path: str, target_path: str
) -> Iterator[_Row]:
    both = zip_longest(_raw_lines(sources, source_path), _raw_lines(targets, target_path))
    for line, (source, target) in enumerate(both, start=1):
        if source is None or target is None:
            # Unequal lengths break the alignment of every line: never skippable.
            short, other = (
                (source_path, target_path) if source is None else (target_path, source_path)
            )
            raise DataError(
                short, f"ran out of lines after line {line - 1}; {other} has more", line
            )
        try:
            if b"\t" in source[1]:
                raise DataError(
                    source_path,
                    "tab in the source: with a target file, each line is one source sentence "
                    "(without the target file, lines are source<TAB>target)",
                    line,
                )
            yield [
                (
                    _sentence(_decode(source[1], source_path, line), "source", source_path, line),
                    _sentence(_decode(target[1], target_path, line), "target", target_path, line),
                )
            ]
        except DataError as problem:
            yield problem


def _stream_file(path: str | Path) -> Iterator[tuple[int, str]]:
    with _open(path) as stream:
        yield from _plain_lines(stream, str(path))


def _plain_lines(stream: BinaryIO, label: str) -> Iterator[tuple[int, str]]:
    for line, raw in _raw_lines(stream, label):
        text = _decode(raw, label, line)
        if "\r" in text:  # lines ending in CR alone would be read, and translated, as one
            raise DataError(
                label, "carriage return inside the line (lines ending in CR alone?)", line
            )
        yield line, text


def _raw_lines(stream: BinaryIO, label: str) -> Iterator[tuple[int, bytes]]:
    # Binary lines split on "\n" only: text mode would also split on "\r", "\x85", "\u2028"...
    # inside a sentence, and decoding line by line lets an error name its line.
    for number, raw in enumerate(stream, start=1):
        if number == 1:
            for magic, kind in _COMPRESSED:
                if magic.match(raw):  # a whole-file problem: never skipped as a bad line
                    raise DataError(
                        label,
                        f"{kind}-compressed: decompress it first (tandem reads UTF-8 text)",
                    )
        if number == 1 and raw.startswith(_BOM):
            if raw == _BOM:
                return  # a file holding only a BOM is an empty file, not one blank line
            raw = raw[len(_BOM) :]
        if raw.endswith(b"\r\n"):
            raw = raw[:-2]
        elif raw.endswith(b"\n"):
            raw = raw[:-1]
        yield number, raw


def _decode(raw: bytes, label: str, line: int) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(label, f"invalid UTF-8 at byte {exc.start + 1} of the line", line) from None
    if "\0" in text:
        # Valid UTF-8, but never text: most often a UTF-16 file without a byte order mark.
        raise DataError(
            label,
            f"NUL byte at byte {raw.index(0) + 1} of the line (UTF-16 without a BOM? tandem "
            "reads UTF-8)",
            line,
        )
    return text


def _sentence(text: str, side: str, label: str, line: int) -> str:
    if not text.strip():
        raise DataError(label, f"empty {side} sentence", line)
    if "\r" in text:
        # Lines end at "\n" (or "\r\n"): a file whose lines end in a lone "\r" would
        # otherwise be read as one line, every pair after the first lost in its target.
        raise DataError(
            label, f"carriage return inside the {side} sentence (lines ending in CR alone?)", line
        )
    if text.startswith("\ufeff"):
        # Only a file's first line may begin with a byte order mark (it is dropped there);
        # later, it is one of two files joined with cat, each with its own.
        raise DataError(
            label,
            f"byte order mark (U+FEFF) at the start of the {side} sentence (files joined "
            "with cat, each with its own?)",
            line,
        )
    return text


def _check_file(path: str | Path) -> None:
    # Checked up front so that a missing file is one clear error, not an OSError traceback.
    target = Path(path)
    if target.is_dir():
        raise DataError(path, "is a directory, expected a file")
    if not target.exists():
        raise DataError(path, "no such file")


def _open(path: str | Path) -> BinaryIO:
    try:
        return open(path, "rb")  # noqa: SIM115 - callers close it with `with`
    except OSError as exc:
        raise DataError(path, f"cannot read file: {exc.strerror or exc}") from exc
