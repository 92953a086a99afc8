"""How a setting is offered on the command line: its flag and help, declared on its field."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Flag:
    """The command-line flag of one setting.

    Args:
        name: the flag, `--latent-dim`.
        help: its help; `{default}` stands for the setting's default.
        metavar: what the help calls its value (default: the flag's name in capitals, or its
            choices).
        choices: the values it takes.
        switch: for a flag that takes no value: the value it sets (`--no-masking`: False);
            left out, the setting keeps its value (a config file's, or the default).
    """

    name: str
    help: str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    switch: bool | None = None


def option(default: Any, flag: str, help: str, **details: Any) -> Any:
    """A dataclass field whose setting the command line offers as `flag` (see `Flag`).

    Example:
        >>> @dataclass(frozen=True)
        ... class Example:
        ...     epochs: int = option(100, "--epochs", "epochs (default: {default})")
        >>> flag_of(dataclasses.fields(Example)[0]).name
        '--epochs'
    """
    return dataclasses.field(default=default, metadata={"flag": Flag(flag, help, **details)})


def flag_of(field: dataclasses.Field) -> Flag | None:
    """The flag a section's field is offered as, or None for one the command line leaves out."""
    return field.metadata.get("flag")
