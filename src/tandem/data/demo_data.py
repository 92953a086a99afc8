"""Offline English->French demo pairs (numbers and dates in words) from num2words and babel."""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from tandem.errors import TandemError

# Short sentences keep the task learnable by a small character-level LSTM in minutes.
MAX_SOURCE_CHARS = 30
MAX_TARGET_CHARS = 50
FIRST_YEAR, LAST_YEAR = 1990, 2030
MAX_NUMBER = 9999


def make_demo_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Make n distinct (English, French) pairs: about half numbers, half dates, in words.

    Numbers 0..9999 as num2words spells them ("three hundred and twelve" -> "trois cent
    douze") and dates 1990..2030 in babel's "long" format ("March 5, 2021" -> "5 mars 2021").
    Pairs longer than MAX_SOURCE_CHARS / MAX_TARGET_CHARS are left out.

    Args:
        n: how many pairs (about 16,900 exist: 1,909 numbers are short enough).
        seed: the same seed gives the same pairs in the same order.

    Returns:
        n pairs with distinct sources, shuffled.

    Raises:
        TandemError: n is negative or larger than the pairs that exist.
    """
    if n < 0:
        raise TandemError(f"the number of demo pairs must be at least 0, got {n}")
    rng = random.Random(seed)
    numbers = _candidates(rng, MAX_NUMBER + 1, _number_pair)
    first_day = datetime.date(FIRST_YEAR, 1, 1)
    days = (datetime.date(LAST_YEAR, 12, 31) - first_day).days + 1
    dates = _candidates(rng, days, lambda i: _date_pair(first_day + datetime.timedelta(days=i)))
    # Half from each kind; when one kind runs out, the other fills the gap.
    pairs = _take(numbers, n // 2) + _take(dates, n - n // 2)
    pairs += _take(numbers, n - len(pairs))
    pairs += _take(dates, n - len(pairs))
    if len(pairs) < n:
        raise TandemError(f"only {len(pairs)} distinct demo pairs exist, {n} were asked for")
    rng.shuffle(pairs)
    return pairs


def split_pairs(
    pairs: Sequence[tuple[str, str]], test_fraction: float, seed: int = 0
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Split pairs into train and test so that no source sentence is in both.

    Args:
        pairs: (source, target) pairs; rows sharing a source go to the same side.
        test_fraction: share of the distinct sources for the test side, between 0 and 1.
        seed: which sources go to the test side.

    Returns:
        (train, test), each in the input order; both non-empty.

    Raises:
        TandemError: test_fraction outside (0, 1) or fewer than two distinct sources.
    """
    if not 0.0 < test_fraction < 1.0:
        raise TandemError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    sources = list(dict.fromkeys(source for source, _ in pairs))
    if len(sources) < 2:
        raise TandemError("need at least two distinct source sentences to split")
    count = min(max(1, round(test_fraction * len(sources))), len(sources) - 1)
    test_sources = set(random.Random(seed).sample(sources, count))
    train = [pair for pair in pairs if pair[0] not in test_sources]
    test = [pair for pair in pairs if pair[0] in test_sources]
    return train, test


def write_tsv(pairs: Sequence[tuple[str, str]], path: str | Path) -> None:
    """Write pairs as "source<TAB>target" lines, UTF-8 with "\\n" endings.

    Args:
        pairs: (source, target) pairs without tabs or line breaks.
        path: the file to write (its folder must exist).

    Raises:
        ValueError: a sentence holds a tab or line break, which would break the layout.
    """
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for source, target in pairs:
            if any(char in source + target for char in "\t\r\n"):
                raise ValueError(f"tab or line break in pair {(source, target)!r}")
            out.write(f"{source}\t{target}\n")


def _number_pair(number: int) -> tuple[str, str]:
    from num2words import num2words  # an optional dependency (the "demo" extra)

    return num2words(number, lang="en"), num2words(number, lang="fr")


def _date_pair(day: datetime.date) -> tuple[str, str]:
    from babel.dates import format_date  # an optional dependency (the "demo" extra)

    return format_date(day, format="long", locale="en"), format_date(
        day, format="long", locale="fr"
    )


def _candidates(
    rng: random.Random, size: int, make: Callable[[int], tuple[str, str]]
) -> Iterator[tuple[str, str]]:
    # Shuffled indices and lazy conversion: distinct by construction, and only as many
    # pairs are spelled out as are needed (plus the too-long ones skipped on the way).
    order = list(range(size))
    rng.shuffle(order)
    for index in order:
        source, target = make(index)
        if len(source) <= MAX_SOURCE_CHARS and len(target) <= MAX_TARGET_CHARS:
            yield source, target


def _take(candidates: Iterator[tuple[str, str]], count: int) -> list[tuple[str, str]]:
    return [pair for _, pair in zip(range(max(count, 0)), candidates, strict=False)]
