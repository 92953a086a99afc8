"""The checks every section runs on its values, and the error that names a bad setting."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

from tandem.errors import TandemError


@dataclass(frozen=True)
class Setting:
    """A setting named in an error: `train.epochs`, or with `show_value` `train.epochs = 0`.

    Args:
        section: its section, as config.json spells it (`data`, `model`, `train`, `decode`).
        key: its key in that section.
        value: its value (shown with `show_value`).
        show_value: whether the error shows the value after the name.
    """

    section: str
    key: str
    value: Any = None
    show_value: bool = False

    def __str__(self) -> str:
        name = f"{self.section}.{self.key}"
        return f"{name} = {self.value!r}" if self.show_value else name


class ConfigError(TandemError):
    """An unknown key or an invalid value in a configuration.

    Args:
        *parts: the message in pieces: text, and the settings it names (`Setting`), so that
            a caller can name those settings its own way (the CLI writes the flags given).

    Example:
        >>> error = ConfigError(Setting("train", "epochs"), " must be a positive integer")
        >>> (str(error), error.section, error.key)
        ('train.epochs must be a positive integer', 'train', 'epochs')
    """

    def __init__(self, *parts: str | Setting):
        self.parts = parts
        super().__init__("".join(map(str, parts)))

    @property
    def settings(self) -> list[Setting]:
        """The settings the message names, in its order."""
        return [part for part in self.parts if isinstance(part, Setting)]

    @property
    def section(self) -> str | None:
        """The section of the first setting named (None when the message names none)."""
        return self.settings[0].section if self.settings else None

    @property
    def key(self) -> str | None:
        """The key of the first setting named (None when the message names none)."""
        return self.settings[0].key if self.settings else None


def setting(obj, name: str, show_value: bool = False) -> Setting:
    """The setting `name` of the section `obj`, for an error to name."""
    section = type(obj).__name__.removesuffix("Config").lower()
    return Setting(section, name, getattr(obj, name), show_value)


def check_positive(obj, name: str, allow_none: bool = False, most: int | None = None) -> None:
    value = getattr(obj, name)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(setting(obj, name), f" must be a positive integer, got {value!r}")
    if most is not None and value > most:
        raise ConfigError(setting(obj, name), f" must be at most {most:,}, got {value!r}")


def check_count(obj, name: str) -> None:
    """A whole number >= 0 (0: off)."""
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(setting(obj, name), f" must be an integer >= 0, got {value!r}")


def check_bool(obj, name: str) -> None:
    if not isinstance(getattr(obj, name), bool):
        raise ConfigError(setting(obj, name), f" must be true or false, got {getattr(obj, name)!r}")


def check_fraction(obj, name: str) -> None:
    """A number in [0, 1): a rate or a share."""
    value = getattr(obj, name)
    if not is_number(value, low=0.0, high=1.0, closed_low=True):
        raise ConfigError(setting(obj, name), f" must be in [0, 1), got {value!r}")


def check_seed(obj) -> None:
    """Random seeds are what numpy and JAX take: integers in [0, 2**32)."""
    value = obj.seed
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ConfigError(
            setting(obj, "seed"), f" must be an integer in [0, 2**32 - 1], got {value!r}"
        )


def check_choice(obj, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(obj, name)
    if value not in choices:
        raise ConfigError(
            setting(obj, name), f" must be one of {', '.join(choices)}; got {value!r}"
        )


def plain_numbers(obj) -> None:
    """Python's own int and float in place of other numbers (numpy's np.int64(4), say), so
    that the checks accept them and config.json can hold them; an int where a float is
    meant (`"learning_rate": 1` in a file) is made a float, as Keras wants it."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, bool) or type(value) is float:
            continue
        if f.type in ("float", "float | None") and isinstance(value, numbers.Integral):
            try:
                object.__setattr__(obj, f.name, float(value))
            except OverflowError:  # beyond a float's range: infinite, refused by the checks
                object.__setattr__(obj, f.name, math.copysign(math.inf, value > 0 or -1))
        elif type(value) is int:
            continue
        elif isinstance(value, numbers.Integral):
            object.__setattr__(obj, f.name, int(value))
        elif isinstance(value, numbers.Real):
            object.__setattr__(obj, f.name, float(value))


def is_number(value, low: float, high: float = math.inf, closed_low: bool = False) -> bool:
    """A finite int or float (not a bool) in (low, high), or [low, high) when `closed_low`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    return (low <= value if closed_low else low < value) and value < high
