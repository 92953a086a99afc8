"""No option that silently does nothing: every data, model and train setting, changed in every
model family and preset, either changes what training is given or built, or is refused by name.

The settings are read from the config sections' fields, so a new one is checked without a line
here. "Changes what training is given or built" is, in order of cost: the pairs read from a
file, the prepared run (vocabularies, sizes, split, first batch), the compiled optimizer and
loss, the callbacks and their settings, the model's weight shapes, and its training-mode output
(dropout included) on one batch, from weights that depend on their shapes only (the seed acts
on the batches' order).
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import pytest
from keras.optimizers.schedules import LearningRateSchedule

from conftest import TINY_PAIRS, write_tsv
from tandem.config import SECTIONS, Config, ConfigError, ModelConfig
from tandem.data.reading import read_pairs
from tandem.errors import TandemError
from tandem.training.devices import ONE_DEVICE
from tandem.training.preparation import check_arguments, prepare_run
from tandem.training.trainer import _build_model, _wire_callbacks

SMALL_TRAIN = {"epochs": 2, "batch_size": 4, "validation_split": 0.25}
SMALL_RNN = {"latent_dim": 8, "embedding_dim": 6}
VARIANTS = {  # the families and presets, each as small as it builds
    "seed preset": ModelConfig.seed(latent_dim=8),
    "rnn": ModelConfig(**SMALL_RNN),
    "rnn attention": ModelConfig(**SMALL_RNN, attention="general"),
    "bidirectional": ModelConfig(**SMALL_RNN, attention="dot", bidirectional=True),
    "transformer": ModelConfig(
        family="transformer", latent_dim=8, embedding_dim=8, heads=2, ff_dim=8
    ),
}
# Values that make an option act on TINY_PAIRS (lengths below its longest pairs).
DATA_VALUES = {"max_samples": 8, "max_source_length": 4, "max_target_length": 7}
# Other values to try, where the generic rule below would pick one that is not valid.
OTHER_VALUES = {
    "adam_beta_2": 0.99,
    "lr_factor": 0.25,
    "validation_split": 0.5,
    "learning_rate": 0.01,
    "gradient_clip_norm": 0.5,
    "warmup_steps": 10,
    "seed": 7,
}


def other_value(section, name: str):
    """A valid value for `section.name` other than the one it has."""
    value = getattr(section, name)
    field = next(f for f in dataclasses.fields(section) if f.name == name)
    choices = field.metadata["flag"].choices
    if name in DATA_VALUES:
        return DATA_VALUES[name]
    if name in OTHER_VALUES:
        return OTHER_VALUES[name]
    if choices:
        return next(choice for choice in choices if choice != value)
    if isinstance(value, bool):
        return not value
    if "float" in str(field.type):  # rates and shares
        return 0.3 if not value else value / 2
    return 2 if value is None else value + (2 if name == "latent_dim" else 1)


def changed(config: Config, section: str, name: str, value) -> Config:
    """`config` with one setting changed, as `tandem train` changes it: a transformer's
    embeddings follow its width."""
    changes = {name: value}
    family = value if name == "family" else config.model.family
    if section == "model" and family == "transformer" and name in ("latent_dim", "family"):
        changes["embedding_dim"] = changes.get("latent_dim", config.model.latent_dim)
    return config.replace(section, **changes)


def describe(obj) -> dict:
    """An object's plain settings (numbers, strings, flags), its name left out."""
    return {
        key: value
        for key, value in vars(obj).items()
        if isinstance(value, int | float | str | bool | type(None)) and key != "name"
    }


class Probe:
    """What a config gives training, part by part, each computed once when first asked for."""

    def __init__(self, config: Config, data_file, tmp_path):
        self.config, self.data_file, self.tmp_path = config, data_file, tmp_path
        self._run = self._model = None

    def run(self):
        if self._run is None:
            output = self.tmp_path / f"run{id(self)}"
            pairs = check_arguments(TINY_PAIRS, self.config, [])  # as `train` takes them
            self._run = prepare_run(pairs, self.config, output, False, True, ONE_DEVICE)
        return self._run

    def model(self):
        if self._model is None:
            self._model = _build_model(self.config, self.run().dims, None)
        return self._model

    def parts(self):
        """(name, value) pairs, cheapest first."""
        data = self.config.data
        try:
            read = read_pairs(
                self.data_file, max_samples=data.max_samples, skip_bad_lines=data.skip_bad_lines
            ).pairs
        except TandemError as exc:
            read = str(exc)
        yield "pairs read", read
        run = self.run()
        batch = run.train_batches[0]
        yield (
            "prepared run",
            (
                run.dims.to_dict(),
                run.n_train,
                len(run.train_batches),
                [np.asarray(array).tolist() for array in (*batch[0], *batch[1:])],
                run.source_vocab.itos,
                run.target_vocab.itos,
            ),
        )
        fit_model = self.model().fit_model
        optimizer = fit_model.optimizer.get_config()
        optimizer.pop("name")
        schedule = fit_model.optimizer._learning_rate  # a variable, or a schedule
        schedule = isinstance(schedule, LearningRateSchedule) and schedule.get_config()
        yield "optimizer", (optimizer, schedule)
        loss = fit_model.loss
        yield "loss", loss if isinstance(loss, str) else (type(loss), loss.get_config())
        wiring = _wire_callbacks(self.config, run, self.model(), 0, [])
        yield "callbacks", [(type(cb).__name__, describe(cb)) for cb in wiring.callbacks]
        yield "initializers", initializers(fit_model.get_config())
        weights = fit_model.get_weights()
        yield "weight shapes", [w.shape for w in weights]
        # Weights set from their shapes alone: a layer made and never called (which draws a
        # seed, and so changes the initial weights) leaves the output as it was.
        rng = np.random.default_rng(0)
        fit_model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(w.dtype) for w in weights])
        (source, decoder_inputs), *_ = run.train_batches[0]
        keras.utils.set_random_seed(0)
        yield "training output", np.asarray(fit_model([source, decoder_inputs], training=True))


def initializers(config) -> list:
    """Every initializer a (nested) Keras config names, with its settings but its seed."""
    found = []
    if isinstance(config, dict):
        for key, value in config.items():
            if key.endswith("initializer") and isinstance(value, dict):
                settings = {k: v for k, v in value.get("config", {}).items() if k != "seed"}
                found.append((key, value.get("class_name"), settings))
            else:
                found += initializers(value)
    elif isinstance(config, list):
        for item in config:
            found += initializers(item)
    return found


def same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.shape(a) == np.shape(b) and np.allclose(a, b, rtol=1e-6, atol=0)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def first_difference(probe: Probe, baseline: list) -> str | None:
    for index, (name, value) in enumerate(probe.parts()):
        if index == len(baseline):
            baseline.append((name, value))
        if not same(value, baseline[index][1]):
            return name
    return None


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "pairs.tsv"
    write_tsv(path, TINY_PAIRS)
    with path.open("a", encoding="utf-8") as file:
        file.write("a line without a tab\n")  # --skip-bad-lines skips it, or reading fails
    return path


SETTINGS = [
    (section, f.name) for section, kind in SECTIONS.items() for f in dataclasses.fields(kind)
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_option_acts_or_is_refused_by_name(variant, data_file, tmp_path):
    base = Config(model=VARIANTS[variant]).replace("train", **SMALL_TRAIN)
    base.refuse_ignored_settings()
    baseline: list = []
    first_difference(Probe(base, data_file, tmp_path), baseline)  # all parts, once
    silent = []
    for section, name in SETTINGS:
        value = other_value(getattr(base, section), name)
        try:
            config = changed(base, section, name, value)
            config.refuse_ignored_settings()
        except ConfigError as exc:
            assert name in str(exc), f"{section}.{name} = {value!r}: {exc}"
            continue
        if first_difference(Probe(config, data_file, tmp_path), baseline) is None:
            silent.append(f"{section}.{name} = {value!r}")
    assert not silent, f"{variant}: these change nothing and are not refused: {silent}"


def test_dropout_acts_on_a_single_layer_rnn():
    """--dropout is the rate wherever dropout acts: with one layer, on the embeddings and
    before the softmax; the specific rates override it, and a saved config's explicit 0
    keeps meaning 0."""
    config = ModelConfig(num_layers=1, dropout=0.2)
    assert (config.embedding_rate, config.output_rate) == (0.2, 0.2)
    config = ModelConfig(num_layers=1, dropout=0.2, embedding_dropout=0.0, output_dropout=0.1)
    assert (config.embedding_rate, config.output_rate) == (0.0, 0.1)
    assert ModelConfig.seed(dropout=0.2).embedding_rate == 0.0  # one-hot: no embeddings
    saved = Config.from_dict({"model": {"dropout": 0.3, "embedding_dropout": 0.0}}).model
    assert (saved.embedding_rate, saved.output_rate) == (0.0, 0.3)
