"""The offline demo runs end to end (tiny settings here; `make demo` uses the real ones)."""

import dataclasses
import json

import pytest

from tandem.config import ModelConfig
from tandem.demo import EXAMPLES, main, run_demo


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    reports = run_demo(tmp_path, pairs=120, epochs=2, latent_dim=8, verbose=0)
    assert (tmp_path / "data" / "train.tsv").is_file()
    assert list(reports) == ["seed", "attention"]
    for name, report in reports.items():
        assert (tmp_path / name / "model.keras").is_file()
        assert report["n_sources"] == 12
        assert 0.0 <= report["chrf"] <= 100.0
        assert [source for source, _ in report["examples"]] == list(EXAMPLES)
    seed_config = json.loads((tmp_path / "seed" / "config.json").read_text(encoding="utf-8"))
    assert seed_config["model"] == dataclasses.asdict(ModelConfig.seed(latent_dim=8))


def test_demo_rejects_impossible_sizes(tmp_path, capsys):
    assert main(["--output", str(tmp_path), "--pairs", "100000"]) == 2
    assert "distinct demo pairs exist" in capsys.readouterr().err
