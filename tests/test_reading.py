"""Tests for tandem.data.reading: formats, error locations, skipping, streaming."""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tandem.data.reading import ParallelData, group_references, read_lines, read_pairs
from tandem.errors import DataError, TandemError

REAL_TRAIN = Path(__file__).resolve().parents[1].parent / "shared/data/tatoeba-eng-fra/train.tsv"


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def expect_error(path, message: str, line: int | None, **kwargs) -> DataError:
    """Read and assert the DataError's location and its rendered message."""
    with pytest.raises(DataError) as info:
        read_pairs(path, **kwargs)
    error = info.value
    where = f"{error.path}:{line}" if line is not None else error.path
    assert error.line == line
    assert message in str(error)
    assert str(error).startswith(f"{where}: ")
    return error


# --- formats ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pairs.tsv", "pairs.txt", "pairs"])
def test_tab_layout_any_extension(tmp_path, name):
    path = write(tmp_path / name, b"Go.\tVa !\nRun!\tCours !\n")
    data = read_pairs(path)
    assert data == ParallelData([("Go.", "Va !"), ("Run!", "Cours !")], 0, str(path))


def test_attribution_columns_ignored(tmp_path):
    line = "Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM)\n"
    path = write(tmp_path / "fra.txt", (line + "Hi.\tSalut !\t\textra\n").encode())
    assert read_pairs(path).pairs == [("Go.", "Va !"), ("Hi.", "Salut !")]


def test_crlf_and_bom_stripped_but_spaces_kept(tmp_path):
    path = write(tmp_path / "p.tsv", b"\xef\xbb\xbf Go. \t Va !\r\nHi.\tSalut\xc2\xa0!\r\nA\tB")
    assert read_pairs(path).pairs == [(" Go. ", " Va !"), ("Hi.", "Salut\u00a0!"), ("A", "B")]


def test_unusual_line_breaks_inside_a_sentence_are_kept(tmp_path):
    # Only "\n" ends a line; "\x85" and "\u2028" are sentence text.
    path = write(tmp_path / "p.tsv", "a\x85b\tc\u2028d\n".encode())
    assert read_pairs(path).pairs == [("a\x85b", "c\u2028d")]


def test_a_lone_carriage_return_is_a_line_error(tmp_path):
    # Lines ending in CR alone would read as one line, the pairs after the first lost in it.
    path = write(tmp_path / "mac.tsv", b"Go.\tVa !\rHi.\tSalut !\r")
    with pytest.raises(DataError, match=r"mac.tsv:1: carriage return inside the target"):
        read_pairs(path)
    path = write(tmp_path / "p.tsv", b"e\rf\tg\nGo.\tVa !\r\n")
    data = read_pairs(path, skip_bad_lines=True)
    assert data.pairs == [("Go.", "Va !")] and data.skipped == 1


def test_a_tab_in_a_source_file_with_a_target_file_is_a_line_error(tmp_path):
    sources = write(tmp_path / "data.tsv", b"Go.\tVa !\nHi.\tSalut !\n")
    targets = write(tmp_path / "tgt.txt", b"Va !\nSalut !\n")
    with pytest.raises(DataError, match=r"data.tsv:1: tab in the source: with a target file"):
        read_pairs(sources, targets)


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_manythings_zip(tmp_path):
    path = make_zip(
        tmp_path / "fra-eng.zip",
        {
            "_about.txt": b"About this file\n",
            "fra.txt": b"Go.\tVa !\tCC-BY\nHi.\tSalut !\n",
        },
    )
    data = read_pairs(path)
    assert data.pairs == [("Go.", "Va !"), ("Hi.", "Salut !")]
    assert data.path == f"{path}!fra.txt"


def test_zip_line_errors_name_the_member(tmp_path):
    path = make_zip(tmp_path / "fra-eng.zip", {"fra.txt": b"Go.\tVa !\nno tab here\n"})
    error = expect_error(path, "line has no tab: expected source<TAB>target", 2)
    assert error.path == f"{path}!fra.txt"
    assert str(error).startswith(f"{path}!fra.txt:2: ")


@pytest.mark.parametrize(
    "members",
    [{"_about.txt": b"x"}, {"a.txt": b"x\ty\n", "b.txt": b"x\ty\n"}, {"data.csv": b"x"}, {}],
)
def test_zip_without_one_data_member(tmp_path, members):
    path = make_zip(tmp_path / "data.zip", members)
    error = expect_error(path, "expected exactly one .txt data member", None)
    assert error.path == str(path)
    for name in members:
        assert name in str(error)


def test_unreadable_zip(tmp_path):
    path = write(tmp_path / "fra-eng.zip", b"this is not a zip archive\n")
    expect_error(path, "unreadable zip archive", None)


def test_aligned_files(tmp_path):
    sources = write(tmp_path / "src.en", b"\xef\xbb\xbfGo.\r\nHi.\n")
    targets = write(tmp_path / "tgt.fr", b"Va !\nSalut\t!\n")
    data = read_pairs(sources, targets)
    # A tab is ordinary text in aligned files.
    assert data == ParallelData([("Go.", "Va !"), ("Hi.", "Salut\t!")], 0, f"{sources} + {targets}")


@pytest.mark.parametrize("short_side", ["source", "target"])
def test_aligned_files_of_unequal_length(tmp_path, short_side):
    short = write(tmp_path / "short.txt", b"a\nb\n")
    long = write(tmp_path / "long.txt", b"a\nb\nc\nd\n")
    args = (short, long) if short_side == "source" else (long, short)
    with pytest.raises(DataError) as info:
        read_pairs(*args, skip_bad_lines=True)  # never skippable
    assert info.value.path == str(short)
    assert info.value.line == 3
    assert str(info.value) == f"{short}:3: ran out of lines after line 2; {long} has more"


def test_a_byte_order_mark_after_the_first_line_is_a_bad_line(tmp_path):
    # Two files that each begin with a BOM, joined with cat.
    path = write(tmp_path / "cat.tsv", b"\xef\xbb\xbfGo.\tVa !\n\xef\xbb\xbfHi.\tSalut !\n")
    expect_error(path, "byte order mark (U+FEFF) at the start of the source sentence", 2)
    assert read_pairs(path, skip_bad_lines=True).pairs == [("Go.", "Va !")]
    targets = write(tmp_path / "t.txt", b"Va !\n\xef\xbb\xbfSalut !\n")
    sources = write(tmp_path / "s.txt", b"Go.\nHi.\n")
    with pytest.raises(DataError, match="t.txt:2: byte order mark .* of the target sentence"):
        read_pairs(sources, targets)


def test_aligned_files_are_compared_to_their_ends_whatever_max_samples_keeps(tmp_path):
    # A line missing from the targets shifts every later pair, those kept included.
    sources = write(tmp_path / "src.txt", b"a\nb\nc\nd\n")
    targets = write(tmp_path / "tgt.txt", b"A\nC\nD\n")
    with pytest.raises(DataError, match="tgt.txt:4: ran out of lines after line 3; "):
        read_pairs(sources, targets, max_samples=2)
    targets.write_bytes(b"A\nB\nC\nD\n")
    assert read_pairs(sources, targets, max_samples=2).pairs == [("a", "A"), ("b", "B")]


def test_aligned_errors_name_the_side(tmp_path):
    sources = write(tmp_path / "src.txt", b"a\n \nc\nd\n")
    targets = write(tmp_path / "tgt.txt", b"A\nB\n\nD\xff\n")
    with pytest.raises(DataError) as info:
        read_pairs(sources, targets)
    assert str(info.value) == f"{sources}:2: empty source sentence"
    with pytest.raises(DataError) as info:
        read_pairs(write(tmp_path / "ok.txt", b"a\nb\nc\nd\n"), targets)
    assert str(info.value) == f"{targets}:3: empty target sentence"
    data = read_pairs(sources, targets, skip_bad_lines=True)
    assert data.pairs == [("a", "A")]
    assert data.skipped == 3


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        (b"Go.\tVa !\nno tab\n", 2, "line has no tab: expected source<TAB>target"),
        (b"Go.\tVa !\n\nHi.\tSalut\n", 2, "empty line: expected source<TAB>target"),
        (b"Go.\tVa !\r\n\r\n", 2, "empty line: expected source<TAB>target"),
        (b"a\tb\nc\tb\n\tVa !\n", 3, "empty source sentence"),
        (b"Go.\t  \n", 1, "empty target sentence"),
        (b"Go.\t\tattribution\n", 1, "empty target sentence"),
        (b" \t\n", 1, "empty source sentence"),
        (b"Go.\tVa !\nHi.\tSal\xffut\n", 2, "invalid UTF-8 at byte 8 of the line"),
        (
            "Go.\tVa !\n".encode("utf-16-le"),  # UTF-16 without a BOM: valid UTF-8, NULs
            1,
            "NUL byte at byte 2 of the line (UTF-16 without a BOM? tandem reads UTF-8)",
        ),
        (  # the first BOM is the file's; a second is an invisible character, not text
            b"\xef\xbb\xbf\xef\xbb\xbfGo.\tVa\n",
            1,
            "byte order mark (U+FEFF) at the start of the source sentence (files joined with "
            "cat, each with its own?)",
        ),
    ],
)
def test_line_errors(tmp_path, content, line, message):
    path = write(tmp_path / "data.tsv", content)
    error = expect_error(path, message, line)
    assert error.path == str(path)
    assert str(error) == f"{path}:{line}: {message}"


def test_missing_file(tmp_path):
    path = tmp_path / "nope.tsv"
    error = expect_error(path, "no such file", None)
    assert str(error) == f"{path}: no such file"
    with pytest.raises(DataError, match="no such file"):
        read_pairs(write(tmp_path / "src.txt", b"a\n"), tmp_path / "missing.txt")


def test_directory(tmp_path):
    expect_error(tmp_path, "is a directory", None)
    with pytest.raises(DataError, match="is a directory"):
        read_lines(tmp_path)


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf"])
def test_empty_file(tmp_path, content):
    path = write(tmp_path / "empty.tsv", content)
    assert str(expect_error(path, "no sentence pairs", None)) == f"{path}: no sentence pairs"


def test_empty_zip_member(tmp_path):
    path = make_zip(tmp_path / "fra-eng.zip", {"fra.txt": b"", "_about.txt": b"about"})
    assert expect_error(path, "no sentence pairs", None).path == f"{path}!fra.txt"


# --- skipping and limits ------------------------------------------------------------------


@pytest.mark.parametrize(
    "compress, kind",
    [
        (__import__("gzip").compress, "gzip"),
        (__import__("bz2").compress, "bzip2"),
        (__import__("lzma").compress, "xz"),
    ],
)
def test_a_compressed_file_is_named_as_such_and_never_skipped(tmp_path, compress, kind):
    data = compress(b"Go.\tVa !\nHi.\tSalut !\n")
    message = f"{kind}-compressed: decompress it first"
    path = write(tmp_path / "pairs.tsv.x", data)
    expect_error(path, message, None)
    expect_error(path, message, None, skip_bad_lines=True)
    sources = write(tmp_path / "sources.txt", b"Go.\nHi.\n")
    with pytest.raises(DataError, match=f"^{path}: {message}"):
        read_pairs(sources, path)
    with pytest.raises(DataError, match=f"^{path}: {message}"):
        list(read_lines(path))


def test_text_that_begins_like_bzip2_is_text(tmp_path):
    path = write(tmp_path / "pairs.tsv", b"BZh9\tBZh9 !\n")
    assert read_pairs(path).pairs == [("BZh9", "BZh9 !")]


def test_skip_bad_lines_counts(tmp_path):
    content = b"Go.\tVa !\nno tab\n\n\tx\nbad\xff\tx\nHi.\tSalut !\n"
    path = write(tmp_path / "data.tsv", content)
    data = read_pairs(path, skip_bad_lines=True)
    assert data.pairs == [("Go.", "Va !"), ("Hi.", "Salut !")]
    assert data.skipped == 4


def test_all_lines_bad(tmp_path):
    path = write(tmp_path / "data.tsv", b"one\ntwo\n")
    expect_error(path, "no sentence pairs (2 bad lines skipped)", None, skip_bad_lines=True)


def test_max_samples_keeps_first_valid_pairs(tmp_path):
    path = write(tmp_path / "data.tsv", b"a\tA\nbad\nb\tB\nc\tC\n")
    data = read_pairs(path, max_samples=2, skip_bad_lines=True)
    assert data.pairs == [("a", "A"), ("b", "B")]
    assert data.skipped == 1


def test_max_samples_stops_reading(tmp_path):
    # The bad line after the first N pairs is never reached.
    path = write(tmp_path / "data.tsv", b"a\tA\nb\tB\nno tab\n")
    assert read_pairs(path, max_samples=2).pairs == [("a", "A"), ("b", "B")]
    # Aligned files are read to their ends (below), but their bad lines past N are not errors.
    sources = write(tmp_path / "s.txt", b"a\nb\n\n")
    targets = write(tmp_path / "t.txt", b"A\nB\nC\n")
    assert read_pairs(sources, targets, max_samples=1).pairs == [("a", "A")]


def test_multi_reference_reads_every_column_as_a_target(tmp_path):
    path = write(tmp_path / "test.tsv", b"CAT\tK AE T\tK AH T\nTAB\tT AE B\nACT\tAE K T\tAH K T\n")
    assert read_pairs(path).pairs == [("CAT", "K AE T"), ("TAB", "T AE B"), ("ACT", "AE K T")]
    data = read_pairs(path, multi_reference=True)
    assert group_references(data.pairs) == [
        ("CAT", ["K AE T", "K AH T"]),
        ("TAB", ["T AE B"]),
        ("ACT", ["AE K T", "AH K T"]),
    ]
    # max_samples counts lines: a line's references are never split.
    assert read_pairs(path, max_samples=1, multi_reference=True).pairs == [
        ("CAT", "K AE T"),
        ("CAT", "K AH T"),
    ]


def test_multi_reference_empty_column_is_a_line_error(tmp_path):
    path = write(tmp_path / "test.tsv", b"CAT\tK AE T\nTAB\tT AE B\t\n")
    assert read_pairs(path).pairs[1] == ("TAB", "T AE B")  # later columns are not read
    expect_error(path, "empty target sentence", 2, multi_reference=True)


def test_zip_with_a_target_file_is_refused_as_such(tmp_path):
    archive = tmp_path / "fra-eng.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fra.txt", "Go.\tVa !\n")
    targets = write(tmp_path / "t.txt", b"A\n")
    with pytest.raises(DataError, match="a zip archive holds source<TAB>target lines"):
        read_pairs(archive, targets)


def test_multi_reference_is_not_for_aligned_files(tmp_path):
    sources = write(tmp_path / "s.txt", b"a\n")
    targets = write(tmp_path / "t.txt", b"A\n")
    with pytest.raises(TandemError, match="not with a target file"):
        read_pairs(sources, targets, multi_reference=True)


@pytest.mark.parametrize("bad", [0, -3])
def test_max_samples_must_be_positive(tmp_path, bad):
    path = write(tmp_path / "data.tsv", b"a\tA\n")
    with pytest.raises(TandemError, match="max_samples"):
        read_pairs(path, max_samples=bad)


# --- references and streaming -------------------------------------------------------------


def test_group_references():
    pairs = [("Run!", "Cours !"), ("Go.", "Va !"), ("Run!", "Courez !"), ("Go.", "Bouge !")]
    assert group_references(pairs) == [
        ("Run!", ["Cours !", "Courez !"]),
        ("Go.", ["Va !", "Bouge !"]),
    ]
    assert group_references([]) == []


def test_read_lines(tmp_path):
    path = write(tmp_path / "in.txt", b"\xef\xbb\xbfone\r\n\ntwo\tthree\nlast")
    assert list(read_lines(path)) == [(1, "one"), (2, ""), (3, "two\tthree"), (4, "last")]


def test_read_lines_streams(tmp_path):
    path = write(tmp_path / "in.txt", b"good\n" + b"x\n" * 100_000 + b"bad\xff\n")
    lines = read_lines(path)
    assert next(lines) == (1, "good")  # the bad line at the end is not read yet
    with pytest.raises(DataError) as info:
        for _ in lines:
            pass
    assert str(info.value) == f"{path}:100002: invalid UTF-8 at byte 4 of the line"


def test_read_lines_missing_file_fails_at_once(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_lines(tmp_path / "missing.txt")


def test_read_lines_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a\nb\xff\n")))
    lines = read_lines("-")
    assert next(lines) == (1, "a")
    with pytest.raises(DataError) as info:
        next(lines)
    assert info.value.path == "<stdin>"
    assert info.value.line == 2


# --- properties ---------------------------------------------------------------------------

# Any text without tab or line breaks; U+FEFF is left out because a leading one is a BOM.
sentence = st.text(
    st.characters(blacklist_characters="\t\n\r\ufeff\x00", blacklist_categories=("Cs",)), min_size=1
).filter(lambda text: text.strip())
pair_lists = st.lists(st.tuples(sentence, sentence), min_size=1, max_size=20)
fast = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@fast
@given(pairs=pair_lists)
def test_tab_layout_round_trip(tmp_path, pairs):
    text = "".join(f"{source}\t{target}\n" for source, target in pairs)
    path = write(tmp_path / "round.tsv", text.encode())
    assert read_pairs(path).pairs == pairs


@fast
@given(pairs=pair_lists, crlf=st.booleans())
def test_aligned_round_trip(tmp_path, pairs, crlf):
    end = "\r\n" if crlf else "\n"
    sources = write(tmp_path / "s.txt", "".join(s + end for s, _ in pairs).encode())
    targets = write(tmp_path / "t.txt", "".join(t + end for _, t in pairs).encode())
    assert read_pairs(sources, targets).pairs == pairs


# --- the real data ------------------------------------------------------------------------


def test_real_tatoeba_train():
    if not REAL_TRAIN.is_file():
        pytest.skip(f"{REAL_TRAIN} not present")
    data = read_pairs(REAL_TRAIN, max_samples=10_000)
    assert len(data.pairs) == 10_000
    assert data.skipped == 0
    assert all(source.strip() and target.strip() for source, target in data.pairs)
