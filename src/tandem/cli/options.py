"""Config settings as flags: the parser, the Config the flags ask for and the errors that name
them are all read from the `Flag` declared on each section's field."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Collection
from typing import Any

from tandem.config import (
    ConfigError,
    DataConfig,
    DecodeConfig,
    ModelConfig,
    Setting,
    TrainConfig,
    flag_of,
)

# The sections by the name that errors and config.json give them.
SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "decode": DecodeConfig}
# Values argparse converts a flag's text to, by the field's annotation.
VALUE_TYPES = {"int": int, "float": float}


def add_options(container, section: type, *keys: str, hidden: Collection[str] = ()) -> None:
    """Offer the settings `keys` of `section` (DataConfig, ...) as their flags, in this order.

    Args:
        container: the parser or argument group to add them to.
        section: the config section whose fields declare the flags.
        keys: the fields, in the order --help lists them.
        hidden: those parsed (to be refused by name) but left out of --help.
    """
    for key in keys:
        field = _field(section, key)
        flag = flag_of(field)
        help = argparse.SUPPRESS if key in hidden else flag.help.format(default=field.default)
        where = {"dest": _dest(_section_name(section), key), "help": help}
        if flag.switch is not None:
            container.add_argument(flag.name, action="store_const", const=flag.switch, **where)
            continue
        container.add_argument(
            flag.name,
            type=VALUE_TYPES.get(str(field.type).split(" | ")[0]),
            choices=flag.choices,
            metavar=flag.metavar or (None if flag.choices else _capitals(flag.name)),
            **where,
        )


def flag_settings(args: argparse.Namespace, section: type) -> dict[str, Any]:
    """The settings of `section` that flags given on the command line set."""
    name = _section_name(section)
    return {
        field.name: value
        for field in dataclasses.fields(section)
        if flag_of(field) and (value := getattr(args, _dest(name, field.name), None)) is not None
    }


def given(args: argparse.Namespace, section: type, key: str) -> Any:
    """The value the flag of `section.key` gave, or None where it was not given."""
    return getattr(args, _dest(_section_name(section), key), None)


def flag_name(section: type, key: str) -> str:
    """The flag `section.key` is offered as: `--top-k`."""
    return flag_of(_field(section, key)).name


def as_flags(error: ConfigError, args: argparse.Namespace) -> str:
    """The error's message, with each setting a flag given set named by that flag (`--heads 2`
    for `model.heads = 2`); one a --config file or a resumed run set keeps its name."""
    return "".join(
        _named(part, args) if isinstance(part, Setting) else part for part in error.parts
    )


def _named(setting: Setting, args: argparse.Namespace) -> str:
    section = SECTIONS[setting.section]
    flag = flag_of(_field(section, setting.key))
    if flag is None or given(args, section, setting.key) is None:
        return str(setting)
    if not setting.show_value or flag.switch is not None:  # a switch: the flag is its value
        return flag.name
    return f"{flag.name} {repr(setting.value).strip(chr(39))}"


def _field(section: type, key: str) -> dataclasses.Field:
    return {field.name: field for field in dataclasses.fields(section)}[key]


def _section_name(section: type) -> str:
    return section.__name__.removesuffix("Config").lower()


def _dest(section: str, key: str) -> str:
    """Where argparse keeps what a setting's flag gave: `model_latent_dim`."""
    return f"{section}_{key}"


def _capitals(flag: str) -> str:
    """What --help calls a flag's value, as argparse would: `--max-samples` -> MAX_SAMPLES."""
    return flag.lstrip("-").replace("-", "_").upper()
