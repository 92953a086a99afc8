"""The offline demo runs end to end (tiny settings here; `make demo` uses the real ones)."""

import dataclasses
import json
import random

import pytest

from tandem.config import ModelConfig
from tandem.data.reading import read_pairs
from tandem.demo import demo_configs, main


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TANDEM_COMPILE_CACHE", "off")  # the user's cache stays untouched
    assert (
        main(["--output", str(tmp_path), "--pairs", "120", "--epochs", "2", "--latent-dim", "8"])
        == 0
    )
    out = capsys.readouterr().out
    test_data = tmp_path / "data" / "test.tsv"
    assert (tmp_path / "data" / "train.tsv").is_file()
    test_pairs = read_pairs(test_data).pairs
    assert out.count(f"on {len(test_pairs)} held-out test pairs") == 2
    # The pairs shown are held-out ones, the same for both models, drawn with the seed.
    shown = random.Random(0).sample(test_pairs, 5)
    for source, reference in shown:
        assert out.count(f"  {source:28s} -> ") == 2
        assert reference in out
    assert f'tandem translate {tmp_path / "attention"} "forty-two"' in out
    assert f"tandem evaluate {tmp_path / 'attention'} {test_data}" in out
    assert f"tandem explain {tmp_path / 'attention'} --text" in out
    assert f"tandem serve {tmp_path / 'attention'}" in out
    for name in ("seed", "attention"):
        assert (tmp_path / name / "model.keras").is_file()
    seed_config = json.loads((tmp_path / "seed" / "config.json").read_text(encoding="utf-8"))
    assert seed_config["model"] == dataclasses.asdict(ModelConfig.seed(latent_dim=8))
    assert seed_config["train"]["epochs"] == 2


def test_demo_configs_are_the_recipes_unless_overridden():
    recipes = demo_configs()
    assert recipes["seed"].model == ModelConfig.seed(latent_dim=recipes["seed"].model.latent_dim)
    assert recipes["attention"].model.attention != "none"
    tiny = demo_configs(epochs=2, latent_dim=8)
    for config in tiny.values():
        assert (config.train.epochs, config.model.latent_dim) == (2, 8)
        assert not config.ignored_settings()


def test_demo_rejects_impossible_sizes(tmp_path, capsys):
    assert main(["--output", str(tmp_path), "--pairs", "100000"]) == 2
    assert "distinct demo pairs exist" in capsys.readouterr().err
