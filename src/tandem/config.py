"""Typed configuration: every default is written once, here."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tandem.errors import TandemError


class ConfigError(TandemError):
    """An unknown key or an invalid value in a configuration."""


TOKEN_KINDS = ("char", "word", "spm")
FAMILIES = ("rnn", "transformer")
CELLS = ("lstm", "gru")
INPUTS = ("embedding", "one_hot")
ATTENTIONS = ("none", "dot", "general", "bahdanau")
OPTIMIZERS = ("rmsprop", "adam", "sgd")
LR_SCHEDULES = ("constant", "plateau", "inverse_sqrt")
STRATEGIES = ("greedy", "beam", "sample")
OVERLONG = ("truncate", "error")
# Widest layer a config may ask for: a 65,536-wide LSTM's recurrent kernel alone is 64 GiB.
MAX_WIDTH = 2**16
# Deepest stack (recurrent layers or transformer blocks per side); deeper ones took minutes
# to build before the first message.
MAX_LAYERS = 256
# Longest output a search may be asked for (tokens), and the widest beam: beyond these the
# search's arrays do not fit in memory, and an allocation that large can abort the process.
MAX_DECODE_LENGTH = 10_000
MAX_BEAM = 256
# GNMT's length penalty ((5 + length) / 6) ** alpha must stay within float32 at the longest
# decode (alpha 10: 1.7e32); useful values are below 2.
MAX_ALPHA = 10.0
# SentencePiece takes a 32-bit size, and near that never ends; a million pieces is already
# far beyond what any data here yields (fewer are kept on small data).
SPM_MOST_PIECES = 1_000_000


@dataclass(frozen=True)
class DataConfig:
    """How parallel data is read and filtered."""

    max_samples: int | None = None  # keep the first N pairs, as the example's num_samples
    max_source_length: int | None = None  # drop training pairs whose source has more tokens
    max_target_length: int | None = None  # drop training pairs whose target has more tokens
    skip_bad_lines: bool = False  # skip malformed lines (and report how many) instead of failing
    source_tokens: str = "char"  # how the source side is split: char | word | spm (subwords)
    target_tokens: str = "char"  # how the target side is split: char | word | spm (subwords)
    spm_vocab_size: int = 8000  # most SentencePiece pieces per spm side (fewer on small data)

    def __post_init__(self):
        _plain_numbers(self)
        _check_positive(self, "spm_vocab_size", most=SPM_MOST_PIECES)
        for name in ("max_samples", "max_source_length", "max_target_length"):
            _check_positive(self, name, allow_none=True)
        _check_choice(self, "source_tokens", TOKEN_KINDS)
        _check_choice(self, "target_tokens", TOKEN_KINDS)
        _check_bool(self, "skip_bad_lines")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture. `ModelConfig.seed()` is the classic Keras example's model exactly."""

    family: str = "rnn"  # rnn (recurrent encoder and decoder) | transformer (pre-norm)
    cell: str = "lstm"  # recurrent cell of encoder and decoder: lstm | gru
    latent_dim: int = 256  # size of the recurrent states (the example's latent_dim);
    # transformer: the model width
    inputs: str = "embedding"  # embedding | one_hot (the seed's: tokens as one-hot vectors)
    embedding_dim: int = 256  # token embedding size (inputs=embedding)
    mask_padding: bool = True  # padding neither feeds the recurrent layers nor counts in the loss
    num_layers: int = 1  # stacked recurrent layers (transformer: blocks) on each side
    dropout: float = 0.0  # dropout between stacked layers; transformer: on attention
    # weights, block outputs and the feed-forward inner layer
    embedding_dropout: float = 0.0  # dropout on the token embeddings (with positions) of both sides
    output_dropout: float = 0.0  # dropout on the decoder's output vectors, before the softmax
    bidirectional: bool = False  # bidirectional encoder, its states bridged to latent_dim
    attention: str = "none"  # none | dot | general (Luong) | bahdanau (additive)
    input_feeding: bool = False  # feed the previous attentional vector into the decoder
    heads: int = 4  # transformer: attention heads (latent_dim must divide by it)
    ff_dim: int = 1024  # transformer: inner width of the feed-forward blocks

    def __post_init__(self):
        _plain_numbers(self)
        _check_choice(self, "family", FAMILIES)
        _check_choice(self, "cell", CELLS)
        _check_choice(self, "inputs", INPUTS)
        _check_choice(self, "attention", ATTENTIONS)
        for name in ("latent_dim", "embedding_dim", "ff_dim"):
            _check_positive(self, name, most=MAX_WIDTH)
        _check_positive(self, "num_layers", most=MAX_LAYERS)
        _check_positive(self, "heads", most=MAX_WIDTH)
        for name in ("dropout", "embedding_dropout", "output_dropout"):
            _check_fraction(self, name)
        if self.embedding_dropout and self.inputs != "embedding":
            raise ConfigError("model.embedding_dropout needs inputs: embedding")
        if self.input_feeding and self.attention == "none":
            raise ConfigError("model.input_feeding needs attention (dot, general or bahdanau)")
        for name in ("mask_padding", "bidirectional", "input_feeding"):
            _check_bool(self, name)
        if self.family == "transformer":
            self._check_transformer()

    def _check_transformer(self) -> None:
        rnn_only = {  # settings a transformer cannot honour, when not at their defaults
            "cell": self.cell != "lstm",
            "inputs": self.inputs != "embedding",
            "mask_padding": not self.mask_padding,
            "bidirectional": self.bidirectional,
            "attention": self.attention != "none",
            "input_feeding": self.input_feeding,
        }
        for name, changed in rnn_only.items():
            if changed:
                raise ConfigError(
                    f"model.{name} = {getattr(self, name)!r} applies to the rnn family only"
                )
        if self.embedding_dim != self.latent_dim:
            raise ConfigError(
                "model.family transformer: embedding_dim must equal latent_dim (the model "
                f"width), got {self.embedding_dim} and {self.latent_dim}"
            )
        if self.latent_dim % self.heads or (self.latent_dim // self.heads) % 2:
            raise ConfigError(
                f"model.latent_dim ({self.latent_dim}) must split into {self.heads} heads of "
                "an even size"
            )

    @classmethod
    def seed(cls, **changes) -> ModelConfig:
        """The example's model: one-hot inputs, one LSTM layer per side, padding not masked."""
        return cls(**{"inputs": "one_hot", "mask_padding": False, **changes})


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation; the seed example's values are the defaults."""

    epochs: int = 100  # passes over the training split
    batch_size: int = 64  # sentence pairs per gradient step
    optimizer: str = "rmsprop"  # rmsprop | adam | sgd
    adam_beta_2: float = 0.999  # adam: decay of the squared-gradient average
    learning_rate: float | None = None  # None: the optimizer's Keras default
    validation_split: float = 0.2  # last fraction of the pairs held out, as Keras fit() does
    patience: int | None = None  # early stopping on val_loss after N flat epochs; None: off
    seed: int = 1337  # weight initialisation and shuffling
    gradient_clip_norm: float | None = None  # clip each gradient tensor to this L2 norm; None: off
    label_smoothing: float = 0.0  # share of each target's probability spread over the vocabulary
    lr_schedule: str = "constant"  # constant | plateau (cut the rate when val_loss stops
    # falling) | inverse_sqrt (warm up linearly to the rate, then decay as 1/sqrt(step))
    warmup_steps: int = 1000  # inverse_sqrt: steps of linear warm-up
    lr_patience: int = 3  # plateau: flat epochs before the learning rate is cut
    lr_factor: float = 0.5  # plateau: the learning rate is multiplied by this at each cut
    score_every: int | None = None  # greedy-decode the validation split every N epochs and
    # log val_chrf (val_wer and val_per for word targets); None: off
    average_last: int | None = None  # the saved model averages the weights of the N epochs
    # ending at the one it keeps (the best with early stopping, else the last); None: off

    def __post_init__(self):
        _plain_numbers(self)
        _check_positive(self, "epochs")
        _check_positive(self, "batch_size")
        _check_choice(self, "optimizer", OPTIMIZERS)
        if self.learning_rate is not None and not _is_number(self.learning_rate, low=0.0):
            raise ConfigError(
                f"train.learning_rate must be a finite number > 0, got {self.learning_rate!r}"
            )
        _check_fraction(self, "validation_split")
        _check_positive(self, "patience", allow_none=True)
        _check_seed(self)
        if self.gradient_clip_norm is not None and not _is_number(self.gradient_clip_norm, 0.0):
            raise ConfigError(
                "train.gradient_clip_norm must be a finite number > 0 or null, "
                f"got {self.gradient_clip_norm!r}"
            )
        _check_fraction(self, "label_smoothing")
        _check_choice(self, "lr_schedule", LR_SCHEDULES)
        _check_positive(self, "score_every", allow_none=True)
        _check_positive(self, "lr_patience")
        _check_positive(self, "warmup_steps")
        if not _is_number(self.adam_beta_2, low=0.0, high=1.0):
            raise ConfigError(f"train.adam_beta_2 must be in (0, 1), got {self.adam_beta_2!r}")
        _check_positive(self, "average_last", allow_none=True)
        if not _is_number(self.lr_factor, low=0.0, high=1.0):
            raise ConfigError(f"train.lr_factor must be in (0, 1), got {self.lr_factor!r}")


@dataclass(frozen=True)
class DecodeConfig:
    """How `translate` searches; not saved with a model (chosen per call)."""

    strategy: str = "greedy"  # greedy | beam | sample
    beam_size: int = 5  # open hypotheses kept per sentence (beam)
    alpha: float = 0.0  # GNMT length normalisation exponent (beam); 0 scores raw log-probs
    nbest: int = 1  # hypotheses returned per sentence (beam)
    temperature: float = 1.0  # divides log-probs before sampling (sample)
    top_k: int | None = None  # sample among the k most probable tokens only (sample)
    seed: int = 0  # sampling seed: the same seed gives the same output (sample)
    batch_size: int = 64  # sentences decoded together
    max_length: int | None = None  # most tokens generated, end included; None: the longest
    # training target's tokens + 2 (start and end: the example's max_decoder_seq_length)
    overlong: str = "truncate"  # sources longer than any in training: truncate (warn) | error

    def __post_init__(self):
        _plain_numbers(self)
        _check_choice(self, "strategy", STRATEGIES)
        _check_choice(self, "overlong", OVERLONG)
        _check_positive(self, "beam_size", most=MAX_BEAM)
        for name in ("nbest", "batch_size"):
            _check_positive(self, name)
        _check_positive(self, "top_k", allow_none=True)
        _check_positive(self, "max_length", allow_none=True, most=MAX_DECODE_LENGTH)
        if self.nbest > 1 and self.strategy != "beam":
            raise ConfigError("decode.nbest > 1 needs the beam strategy")
        if self.nbest > self.beam_size:
            raise ConfigError(
                f"decode.nbest ({self.nbest}) cannot exceed decode.beam_size ({self.beam_size})"
            )
        if not _is_number(self.temperature, low=0.0):
            raise ConfigError(
                f"decode.temperature must be a finite number > 0, got {self.temperature!r}"
            )
        if not _is_number(self.alpha, low=0.0, high=MAX_ALPHA, closed_low=True):
            raise ConfigError(
                f"decode.alpha must be a number in [0, {MAX_ALPHA:g}), got {self.alpha!r}"
            )
        _check_seed(self)
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for strategy, names in STRATEGY_SETTINGS.items():
            changed = [n for n in names if getattr(self, n) != defaults[n]]
            if changed and strategy != self.strategy:
                # Silently unused, they would decode otherwise than the caller asked.
                raise ConfigError(
                    f"{', '.join(f'decode.{n}' for n in changed)}: for the {strategy} strategy "
                    f"only, and the strategy is {self.strategy}"
                )

    def in_use(self) -> dict:
        """The settings its strategy reads (a greedy search has no beam size or seed)."""
        own = STRATEGY_SETTINGS[self.strategy]
        names = ("strategy", *own, "batch_size", "max_length", "overlong")
        return {name: getattr(self, name) for name in names}


def decode_config(decode: DecodeConfig | None) -> DecodeConfig:
    """`decode`, or the default settings for None; anything else is refused by name."""
    if decode is None:
        return DecodeConfig()
    if not isinstance(decode, DecodeConfig):
        raise TypeError(
            f"decode must be a tandem.config.DecodeConfig, got {type(decode).__name__} "
            "(DecodeConfig(**settings) builds one)"
        )
    return decode


# The DecodeConfig settings that only one strategy reads.
STRATEGY_SETTINGS = {
    "greedy": (),
    "beam": ("beam_size", "alpha", "nbest"),
    "sample": ("temperature", "top_k", "seed"),
}

SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


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
            f"{_key(section, name)} = {getattr(section, name)!r} has no effect without {needs}"
            for section, name, read, needs in rules
            if not read and getattr(section, name) != getattr(type(section)(), name)
        ]

    @classmethod
    def from_dict(cls, raw: Any) -> Config:
        """Build a config from nested dicts; unknown sections or keys are errors."""
        if not isinstance(raw, dict):
            kind = "null" if raw is None else "an array" if isinstance(raw, list) else "a value"
            raise ConfigError(f"config must be a JSON object, got {kind}")
        unknown = sorted(set(raw) - set(SECTIONS))
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


def _key(obj, name: str) -> str:
    """A setting's name as errors and config.json spell it: `train.epochs`."""
    return f"{type(obj).__name__.removesuffix('Config').lower()}.{name}"


def _check_positive(obj, name: str, allow_none: bool = False, most: int | None = None) -> None:
    value = getattr(obj, name)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{_key(obj, name)} must be a positive integer, got {value!r}")
    if most is not None and value > most:
        raise ConfigError(f"{_key(obj, name)} must be at most {most:,}, got {value!r}")


def _check_bool(obj, name: str) -> None:
    if not isinstance(getattr(obj, name), bool):
        raise ConfigError(f"{_key(obj, name)} must be true or false, got {getattr(obj, name)!r}")


def _check_fraction(obj, name: str) -> None:
    """A number in [0, 1): a rate or a share."""
    value = getattr(obj, name)
    if not _is_number(value, low=0.0, high=1.0, closed_low=True):
        raise ConfigError(f"{_key(obj, name)} must be in [0, 1), got {value!r}")


def _check_seed(obj) -> None:
    """Random seeds are what numpy and JAX take: integers in [0, 2**32)."""
    value = obj.seed
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ConfigError(
            f"{_key(obj, 'seed')} must be an integer in [0, 2**32 - 1], got {value!r}"
        )


def _check_choice(obj, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(obj, name)
    if value not in choices:
        raise ConfigError(f"{_key(obj, name)} must be one of {', '.join(choices)}; got {value!r}")


def _plain_numbers(obj) -> None:
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


def _is_number(value, low: float, high: float = math.inf, closed_low: bool = False) -> bool:
    """A finite int or float (not a bool) in (low, high), or [low, high) when `closed_low`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    return (low <= value if closed_low else low < value) and value < high
