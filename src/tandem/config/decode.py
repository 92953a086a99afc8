"""How `translate` searches: chosen per call, never saved with a model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tandem.config.checks import (
    ConfigError,
    check_choice,
    check_positive,
    check_seed,
    is_number,
    plain_numbers,
    setting,
)
from tandem.config.flags import option

STRATEGIES = ("greedy", "beam", "sample")
OVERLONG = ("truncate", "error")
# Longest output a search may be asked for (tokens), and the widest beam: beyond these the
# search's arrays do not fit in memory, and an allocation that large can abort the process.
MAX_DECODE_LENGTH = 10_000
MAX_BEAM = 256
# GNMT's length penalty ((5 + length) / 6) ** alpha must stay within float32 at the longest
# decode (alpha 10: 1.7e32); useful values are below 2.
MAX_ALPHA = 10.0


@dataclass(frozen=True)
class DecodeConfig:
    """How `translate` searches; not saved with a model (chosen per call)."""

    # greedy | beam | sample (the command line's --beam and --sample choose it).
    strategy: str = "greedy"
    # Open hypotheses kept per sentence (beam).
    beam_size: int = option(5, "--beam", "beam search with N beams", metavar="N")
    # GNMT length normalisation exponent (beam); 0 scores raw log-probs.
    alpha: float = option(0.0, "--alpha", "beam length normalisation (default: {default})")
    # Hypotheses returned per sentence (beam).
    nbest: int = option(1, "--nbest", "hypotheses per source, beam only (default: {default})")
    # Divides log-probs before sampling (sample).
    temperature: float = option(1.0, "--temperature", "sampling temperature (default: {default})")
    # Sample among the k most probable tokens only (sample).
    top_k: int | None = option(None, "--top-k", "sample among the k most probable tokens")
    # Sampling seed: the same seed gives the same output (sample).
    seed: int = option(
        0,
        "--seed",
        "sampling seed: the same seed and input draw the same samples, at any --batch-size "
        "(default: {default})",
    )
    # Sentences decoded together.
    batch_size: int = option(64, "--batch-size", "sentences decoded together (default: {default})")
    # Most tokens generated, end included; None: the longest training target's tokens + 2
    # (start and end: the example's max_decoder_seq_length).
    max_length: int | None = option(
        None,
        "--max-length",
        "most tokens generated per sentence, the end token included (default: the example's "
        "max_decoder_seq_length: the longest training target's tokens + 2)",
    )
    # Sources longer than any in training: truncate (warn) | error.
    overlong: str = option(
        "truncate",
        "--overlong",
        "sources longer than any seen in training: truncate with a warning or stop with an "
        "error (default: {default})",
        choices=OVERLONG,
    )

    def __post_init__(self):
        plain_numbers(self)
        check_choice(self, "strategy", STRATEGIES)
        check_choice(self, "overlong", OVERLONG)
        check_positive(self, "beam_size", most=MAX_BEAM)
        for name in ("nbest", "batch_size"):
            check_positive(self, name)
        check_positive(self, "top_k", allow_none=True)
        check_positive(self, "max_length", allow_none=True, most=MAX_DECODE_LENGTH)
        if self.nbest > 1 and self.strategy != "beam":
            raise ConfigError(setting(self, "nbest"), " > 1 needs the beam strategy")
        if self.nbest > self.beam_size:
            raise ConfigError(
                setting(self, "nbest"),
                f" ({self.nbest}) cannot exceed ",
                setting(self, "beam_size"),
                f" ({self.beam_size})",
            )
        if not is_number(self.temperature, low=0.0):
            raise ConfigError(
                setting(self, "temperature"),
                f" must be a finite number > 0, got {self.temperature!r}",
            )
        if not is_number(self.alpha, low=0.0, high=MAX_ALPHA, closed_low=True):
            raise ConfigError(
                setting(self, "alpha"),
                f" must be a number in [0, {MAX_ALPHA:g}), got {self.alpha!r}",
            )
        check_seed(self)
        self._check_strategy_settings()

    def _check_strategy_settings(self) -> None:
        """Settings of another strategy than the one chosen, silently unused, would decode
        otherwise than the caller asked: refused."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for strategy, names in STRATEGY_SETTINGS.items():
            changed = [n for n in names if getattr(self, n) != defaults[n]]
            if changed and strategy != self.strategy:
                named = [part for n in changed for part in (", ", setting(self, n))][1:]
                raise ConfigError(
                    *named,
                    f": for the {strategy} strategy only, and the strategy is {self.strategy}",
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
