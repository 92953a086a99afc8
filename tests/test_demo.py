"""The offline demo runs end to end (tiny settings here; `make demo` uses the real ones)."""

import pytest

from tandem.demo import EXAMPLES, main, run_demo


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    report = run_demo(tmp_path, pairs=120, epochs=2, latent_dim=8, verbose=0)
    assert (tmp_path / "data" / "train.tsv").is_file()
    assert (tmp_path / "model" / "model.keras").is_file()
    assert report["n_sources"] == 12
    assert 0.0 <= report["chrf"] <= 100.0
    assert [source for source, _ in report["examples"]] == list(EXAMPLES)


def test_demo_rejects_impossible_sizes(tmp_path, capsys):
    assert main(["--output", str(tmp_path), "--pairs", "100000"]) == 2
    assert "distinct demo pairs exist" in capsys.readouterr().err
