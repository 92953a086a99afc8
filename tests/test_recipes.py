"""Every recipe in configs/ loads as a `--config`, says what it is for, and builds its model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tandem.config import Config
from tandem.data.vocabulary import Vocabulary
from tandem.models import ModelDims, build_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RECIPES = sorted(CONFIGS.glob("*.json"))
TINY = [("one two", "un deux"), ("three", "trois"), ("twenty-one", "vingt et un")]


def test_the_benchmark_recipes_are_all_there():
    assert {path.stem for path in RECIPES} >= {"seed", "seed-regime", "tatoeba", "g2p"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda path: path.stem)
def test_a_recipe_loads_explains_itself_and_builds_its_model(path):
    config = Config.load(path)
    config.refuse_ignored_settings()  # every setting in a recipe is read by something
    comment = json.loads(path.read_text(encoding="utf-8"))["comment"]
    assert "docs/benchmarks.md#" in " ".join(comment)  # where its figure is
    # Its model, on tiny data (character vocabularies: SentencePiece needs more text than this).
    sources = Vocabulary.build([s for s, _ in TINY], "char")
    targets = Vocabulary.build([t for _, t in TINY], "char")
    dims = ModelDims(len(sources), len(targets), 12, 14)
    model = build_model(config.model, dims)
    source_ids = np.ones((2, 12), "int32")
    decoder_ids = np.ones((2, 14), "int32")
    inputs = [source_ids, decoder_ids] if config.model.inputs == "embedding" else None
    if inputs is None:  # one-hot models: the fit model takes ids and expands them in the graph
        outputs = model.fit_model.predict([source_ids, decoder_ids], verbose=0)
    else:
        outputs = model.training_model.predict(inputs, verbose=0)
    assert outputs.shape == (2, 14, len(targets))
    np.testing.assert_allclose(outputs.sum(axis=-1), 1.0, rtol=1e-4)


def test_a_comment_must_be_text(tmp_path):
    from tandem.config import ConfigError

    path = tmp_path / "recipe.json"
    path.write_text(json.dumps({"comment": 3, "train": {"epochs": 2}}), encoding="utf-8")
    with pytest.raises(ConfigError, match="'comment' must be a string or a list of strings"):
        Config.load(path)
    path.write_text(json.dumps({"comment": ["a", "b"], "train": {"epochs": 2}}), encoding="utf-8")
    assert Config.load(path).train.epochs == 2
