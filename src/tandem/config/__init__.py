"""Typed configuration: every default is written once, in the sections' fields."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tandem.config.checks import ConfigError, Setting, setting
from tandem.config.decode import (
    MAX_ALPHA,
    MAX_BEAM,
    MAX_DECODE_LENGTH,
    OVERLONG,
    STRATEGIES,
    STRATEGY_SETTINGS,
    DecodeConfig,
    decode_config,
)
from tandem.config.flags import Flag, flag_of, option
from tandem.config.sections import (
    ATTENTIONS,
    CELLS,
    FAMILIES,
    INPUTS,
    LR_SCHEDULES,
    MAX_LAYERS,
    MAX_WIDTH,
    OPTIMIZERS,
    SPM_MOST_PIECES,
    TOKEN_KINDS,
    DataConfig,
    ModelConfig,
    TrainConfig,
)

__all__ = [
    "ATTENTIONS",
    "CELLS",
    "FAMILIES",
    "INPUTS",
    "LR_SCHEDULES",
    "MAX_ALPHA",
    "MAX_BEAM",
    "MAX_DECODE_LENGTH",
    "MAX_LAYERS",
    "MAX_WIDTH",
    "OPTIMIZERS",
    "OVERLONG",
    "SECTIONS",
    "SPM_MOST_PIECES",
    "STRATEGIES",
    "STRATEGY_SETTINGS",
    "TOKEN_KINDS",
    "Config",
    "ConfigError",
    "DataConfig",
    "DecodeConfig",
    "Flag",
    "ModelConfig",
    "Setting",
    "TrainConfig",
    "decode_config",
    "flag_of",
    "option",
]

SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
# A recipe file's note to its reader (see Config.from_dict); never a setting.
COMMENT = "comment"


@dataclass(frozen=True)
class Config:
    """The whole resolved configuration, written into every model directory."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if not isinstance(getattr(self, f.name), SECTIONS[f.name]):
                raise ConfigError(
                    f"config section {f.name!r} must be a {SECTIONS[f.name].__name__}, got "
                    f"{type(getattr(self, f.name)).__name__} (Config.from_dict takes dicts)"
                )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def ignored_settings(self) -> list[str]:
        """Settings changed from their defaults that nothing in this config reads: a
        transformer's heads on an rnn, a warm-up without the inverse_sqrt schedule. A fresh
        training run refuses them, since they would change nothing (saved configs stay
        loadable: their models were trained without them)."""
        return [f"{named}{needs}" for named, needs in self._ignored()]

    def refuse_ignored_settings(self) -> None:
        """Raise a ConfigError naming every setting `ignored_settings` lists, if any."""
        parts = [part for named, needs in self._ignored() for part in ("; ", named, needs)]
        if parts:
            raise ConfigError(*parts[1:])

    def _ignored(self) -> list[tuple[Setting, str]]:
        data, model, train = self.data, self.model, self.train
        spm = "spm" in (data.source_tokens, data.target_tokens)
        rules = [  # (section, key, read, what it needs)
            (model, "heads", model.family == "transformer", "the transformer family"),
            (model, "ff_dim", model.family == "transformer", "the transformer family"),
            (model, "embedding_dim", model.inputs == "embedding", "inputs: embedding"),
            (train, "adam_beta_2", train.optimizer == "adam", "optimizer: adam"),
            (
                train,
                "warmup_steps",
                train.lr_schedule == "inverse_sqrt",
                "lr_schedule: inverse_sqrt",
            ),
            (train, "lr_patience", train.lr_schedule == "plateau", "lr_schedule: plateau"),
            (train, "lr_factor", train.lr_schedule == "plateau", "lr_schedule: plateau"),
            (data, "spm_vocab_size", spm, "spm tokens on a side"),
            (train, "score_every", train.validation_split > 0, "a validation split"),
        ]
        return [
            (setting(section, name, show_value=True), f" has no effect without {needs}")
            for section, name, read, needs in rules
            if not read and getattr(section, name) != getattr(type(section)(), name)
        ]

    @classmethod
    def from_dict(cls, raw: Any) -> Config:
        """Build a config from nested dicts; unknown sections or keys are errors.

        A top-level `"comment"` (a string, or a list of strings: one a line) is for readers of
        a recipe file (configs/) and is not a setting.
        """
        if not isinstance(raw, dict):
            kind = "null" if raw is None else "an array" if isinstance(raw, list) else "a value"
            raise ConfigError(f"config must be a JSON object, got {kind}")
        comment = raw.get(COMMENT, "")
        lines = comment if isinstance(comment, list) else [comment]
        if not all(isinstance(line, str) for line in lines):
            raise ConfigError(f"{COMMENT!r} must be a string or a list of strings")
        unknown = sorted(set(raw) - set(SECTIONS) - {COMMENT})
        if unknown:
            raise ConfigError(
                f"unknown config section {unknown[0]!r}; valid sections: {', '.join(SECTIONS)}"
            )
        return cls(
            **{name: _section(kind, name, raw.get(name, {})) for name, kind in SECTIONS.items()}
        )

    def replace(self, section: str, **changes: Any) -> Config:
        """A copy with some keys of one section changed (None values are ignored)."""
        if section not in SECTIONS:
            raise ConfigError(f"unknown config section {section!r}; valid: {', '.join(SECTIONS)}")
        changes = {k: v for k, v in changes.items() if v is not None}
        current = getattr(self, section)
        merged = _section(type(current), section, {**dataclasses.asdict(current), **changes})
        return dataclasses.replace(self, **{section: merged})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """Read a config.json; its errors name the file, and its keys as the file spells them."""
        try:
            text = Path(path).read_text(encoding="utf-8-sig")  # a BOM is allowed
            raw = json.loads(text, object_pairs_hook=_unique_keys)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read config: {exc}") from None
        except ConfigError as exc:  # a key given twice
            raise ConfigError(f"{path}: {exc}") from None
        try:
            return cls.from_dict(raw)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object whose keys are all different (json keeps the last of a repeated key)."""
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise ConfigError(f"the key {key!r} is given twice in one object")
        seen.add(key)
    return dict(pairs)


def _section(kind: type, name: str, raw: Any):
    if not isinstance(raw, dict):
        raise ConfigError(f"config section {name!r} must be an object")
    valid = [f.name for f in dataclasses.fields(kind)]
    for key in raw:
        if key not in valid:
            raise ConfigError(f"unknown key {name}.{key}; valid keys: {', '.join(valid)}")
    try:
        return kind(**raw)
    except TypeError as exc:
        raise ConfigError(f"config section {name!r}: {exc}") from None
