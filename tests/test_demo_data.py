"""Tests for tandem.data.demo_data: the offline English->French demo pairs."""

from __future__ import annotations

import datetime

import pytest

from tandem.data.demo_data import (
    MAX_SOURCE_CHARS,
    MAX_TARGET_CHARS,
    _date_pair,
    _number_pair,
    make_demo_pairs,
    split_pairs,
    write_tsv,
)
from tandem.data.reading import read_pairs
from tandem.errors import TandemError

pytest.importorskip("num2words")
pytest.importorskip("babel")


@pytest.fixture(scope="module")
def pairs():
    return make_demo_pairs(300, seed=7)


def test_n_honoured_and_distinct(pairs):
    assert len(pairs) == 300
    assert len({source for source, _ in pairs}) == 300
    assert make_demo_pairs(0) == []
    assert len(make_demo_pairs(1)) == 1


def test_deterministic(pairs):
    assert make_demo_pairs(300, seed=7) == pairs
    assert make_demo_pairs(300, seed=8) != pairs


def test_lengths_bounded_and_no_layout_characters(pairs):
    for source, target in pairs:
        assert 0 < len(source) <= MAX_SOURCE_CHARS
        assert 0 < len(target) <= MAX_TARGET_CHARS
        assert not any(char in source + target for char in "\t\r\n")


def test_mix_of_numbers_and_dates(pairs):
    dates = sum(source[-4:].isdigit() for source, _ in pairs)
    assert dates == 150  # exactly half: numbers are spelled out without digits


def test_known_examples():
    assert _number_pair(312) == ("three hundred and twelve", "trois cent douze")
    assert _number_pair(80) == ("eighty", "quatre-vingts")
    assert _date_pair(datetime.date(2021, 3, 5)) == ("March 5, 2021", "5 mars 2021")


def test_too_many_asked_for():
    with pytest.raises(TandemError, match=r"only \d+ distinct demo pairs exist, 20000 were"):
        make_demo_pairs(20_000)


def test_negative_n():
    with pytest.raises(TandemError):
        make_demo_pairs(-1)


def test_split_disjoint_by_source():
    rows = [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4"), ("d", "5"), ("b", "6")]
    train, test = split_pairs(rows, 0.5, seed=1)
    assert sorted(train + test) == sorted(rows)
    assert not {s for s, _ in train} & {s for s, _ in test}
    assert len({s for s, _ in test}) == 2
    assert train == [row for row in rows if row in train]  # input order kept
    assert split_pairs(rows, 0.5, seed=1) == (train, test)


def test_split_keeps_both_sides_non_empty(pairs):
    train, test = split_pairs(pairs, 0.1)
    assert len(test) == 30
    assert len(train) == 270
    train, test = split_pairs([("a", "x"), ("b", "y")], 0.01)
    assert (len(train), len(test)) == (1, 1)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_bad_fraction(fraction):
    with pytest.raises(TandemError, match="test_fraction"):
        split_pairs([("a", "x"), ("b", "y")], fraction)


def test_split_needs_two_sources():
    with pytest.raises(TandemError, match="two distinct"):
        split_pairs([("a", "x"), ("a", "y")], 0.5)


def test_write_tsv_round_trip(tmp_path, pairs):
    path = tmp_path / "demo.tsv"
    write_tsv(pairs, path)
    assert b"\r" not in path.read_bytes()
    assert read_pairs(path).pairs == pairs


def test_write_tsv_rejects_tabs(tmp_path):
    with pytest.raises(ValueError, match="tab or line break"):
        write_tsv([("a\tb", "c")], tmp_path / "bad.tsv")
