"""What a run shows of itself: decoded validation pairs, examples, attention maps, TensorBoard
events, tokens per second and the epochs' checkpoints kept."""

from __future__ import annotations

import csv
import itertools
import json
import struct

import pytest

from tandem.cli import build_parser, train_config
from tandem.config import Config, ConfigError
from tandem.files import tsv_field
from tandem.model_dir import read_history, snapshot_paths

WORDS = {"go": "va", "run": "cours", "stop": "arrête", "wait": "attends", "help": "aide"}
WORDS |= {"jump": "saute", "see": "vois", "eat": "mange"}
PAIRS = [(f"{a} {b}.", f"{WORDS[a]} {WORDS[b]}.") for a, b in itertools.permutations(WORDS, 2)]
PAIRS = PAIRS[:30] + [("go\\ run.", "va\\ cours.")]  # a backslash, escaped in the TSV


def tiny_config(**train) -> Config:
    config = Config().replace("model", latent_dim=8, embedding_dim=8)
    return config.replace("train", **{"batch_size": 8, "validation_split": 0.2, **train})


def read_scalars(folder) -> dict[str, dict[int, float]]:
    """Every scalar of the event files in `folder`: tag -> step -> value (TFRecord framing:
    length, its CRC, the Event, its CRC), read with tensorboardX's own protobuf classes."""
    from tensorboardX.proto.event_pb2 import Event

    scalars: dict[str, dict[int, float]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        position = 0
        while position < len(data):
            (length,) = struct.unpack("<Q", data[position : position + 8])
            event = Event.FromString(data[position + 12 : position + 12 + length])
            position += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return scalars


def test_keep_checkpoints_and_tensorboard_options():
    train = tiny_config().train
    assert (train.keep_checkpoints, train.tensorboard) == (0, False)
    args = build_parser().parse_args(
        ["train", "d", "-o", "m", "--keep-checkpoints", "3", "--tensorboard"]
    )
    parsed = train_config(args).train
    assert (parsed.keep_checkpoints, parsed.tensorboard) == (3, True)
    for changes, message in (
        ({"keep_checkpoints": -1}, "train.keep_checkpoints must be an integer >= 0, got -1"),
        ({"keep_checkpoints": 1.5}, "train.keep_checkpoints must be"),
        ({"tensorboard": "yes"}, "train.tensorboard must be true or false"),
    ):
        with pytest.raises(ConfigError, match=message):
            tiny_config(**changes)
    # TensorBoard needs no validation split.
    tiny_config(validation_split=0.0, tensorboard=True).refuse_ignored_settings()


def test_starting_over_clears_the_validations_and_tensorboard_events(tmp_path):
    from tandem.training.resume import clear_run

    for folder in ("validations", "tensorboard", "checkpoints/epochs"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "old").write_text("from the run before")
    (tmp_path / "config.json").write_text("{}")
    clear_run(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_tsv_fields_are_escaped_as_translate_escapes():
    assert tsv_field("a\tb\\c\nd\re") == "a\\tb\\\\c\\nd\\re"


@pytest.mark.slow
def test_an_attention_run_shows_its_validations_tensorboard_and_tokens_per_second(tmp_path, capsys):
    from tandem.training import train

    config = tiny_config(epochs=2, score_every=1, tensorboard=True)
    config = config.replace("model", attention="dot")
    result = train(PAIRS, config, tmp_path, verbose=2)
    validation = PAIRS[-round(len(PAIRS) * 0.2) :]
    assert result.validation_pairs == len(validation)
    for epoch in (1, 2):
        lines = (tmp_path / "validations" / f"epoch-{epoch}.tsv").read_text("utf-8").splitlines()
        rows = [line.split("\t") for line in lines]
        assert rows[0] == ["source", "reference", "hypothesis"]
        assert [row[:2] for row in rows[1:]] == [
            [tsv_field(s), tsv_field(t)] for s, t in validation
        ]
        assert all(len(row) == 3 for row in rows[1:])
        for example in (1, 2, 3):
            png = tmp_path / "validations" / f"epoch-{epoch}-attention-{example}.png"
            assert png.read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "validations" / "epoch-1-attention-4.png").exists()
    out = capsys.readouterr().out
    assert out.count("validation examples") == 2
    assert f"source     {validation[0][0]!r}" in out and f"reference  {validation[2][1]!r}" in out
    assert "tokens_per_second" in out  # in Keras's progress line

    history = read_history(tmp_path / "history.csv")
    assert all(row["tokens_per_second"] > 0 for row in history)
    scalars = read_scalars(tmp_path / "tensorboard")
    columns = {key for row in history for key in row} - {"epoch"}
    assert set(scalars) == columns
    assert {"loss", "val_loss", "learning_rate", "tokens_per_second", "val_chrf"} <= columns
    for row in history:
        for key in columns:
            assert scalars[key][row["epoch"] + 1] == pytest.approx(row[key], rel=1e-6)


@pytest.mark.slow
def test_keep_checkpoints_keeps_the_last_epochs_across_a_resume_for_average(tmp_path):
    from tandem.training import average_model_dir, train

    config = tiny_config(epochs=2, keep_checkpoints=2, score_every=2, optimizer="adam")
    train(PAIRS, config, tmp_path, verbose=0)
    assert sorted(snapshot_paths(tmp_path)) == [1, 2]
    # A history written before tokens per second were logged: the resumed run carries on.
    last_history = tmp_path / "checkpoints" / "last" / "history.csv"
    with open(last_history, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = [key for key in rows[0] if key != "tokens_per_second"]
    with open(last_history, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

    result = train(PAIRS, config.replace("train", epochs=4), tmp_path, resume=True, verbose=0)
    assert result.final_epoch == 4
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["weights_epochs"] == [4]  # no averaging: the kept epoch alone
    assert sorted(snapshot_paths(tmp_path)) == [3, 4]
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert checkpoints == ["best", "epochs", "last"]
    history = read_history(tmp_path / "history.csv")
    assert ["tokens_per_second" in row for row in history] == [False, False, True, True]
    # Scored at epochs 2 and 4; a model without attention has no maps.
    names = sorted(p.name for p in (tmp_path / "validations").iterdir())
    assert names == ["epoch-2.tsv", "epoch-4.tsv"]

    assert average_model_dir(tmp_path, 2) == (3, 4)
    with pytest.raises(Exception, match="no weight snapshot of epoch 2"):
        average_model_dir(tmp_path, 3)
    # Going back to an earlier epoch: the resumed run kept epoch 3's weights for it.
    assert average_model_dir(tmp_path, 1, epoch=3) == (3,)
    with pytest.raises(Exception, match="no weight snapshot of epoch 2 in"):
        average_model_dir(tmp_path, 1, epoch=2)
