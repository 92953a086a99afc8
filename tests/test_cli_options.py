"""Options declared once, on the config fields: every flag, its Config and its errors follow."""

import dataclasses
import json

import pytest

from tandem.cli import build_parser, main, train_config
from tandem.cli.options import as_flags
from tandem.config import (
    ConfigError,
    DataConfig,
    DecodeConfig,
    ModelConfig,
    Setting,
    TrainConfig,
    flag_of,
)


def flags(section, leave_out=()):
    return {flag_of(f).name for f in dataclasses.fields(section) if flag_of(f)} - set(leave_out)


def offered(command):
    parser = build_parser().subcommands[command]
    return {flag for action in parser._actions for flag in action.option_strings}


@pytest.mark.parametrize(
    "command, expected",
    [
        ("train", flags(DataConfig) | flags(ModelConfig) | flags(TrainConfig)),
        ("translate", flags(DecodeConfig)),
        ("evaluate", flags(DecodeConfig, leave_out=["--overlong"])),
    ],
)
def test_every_declared_flag_is_offered(command, expected):
    assert expected <= offered(command)


def test_a_flag_not_given_leaves_the_setting_alone_and_a_switch_sets_its_value():
    args = build_parser().parse_args(["train", "d", "-o", "m", "--no-masking", "--layers", "2"])
    model = train_config(args).model
    assert (model.mask_padding, model.num_layers, model.bidirectional) == (False, 2, False)


def test_an_error_names_a_setting_by_its_flag_only_where_the_flag_was_given():
    args = build_parser().parse_args(["train", "d", "-o", "m", "--ff-dim", "16"])
    error = ConfigError(
        Setting("model", "heads", 2, show_value=True), " and ",
        Setting("model", "ff_dim", 16, show_value=True), " and ",
        Setting("model", "mask_padding", False, show_value=True),
    )  # fmt: skip
    assert (error.section, error.key) == ("model", "heads")
    assert str(error) == "model.heads = 2 and model.ff_dim = 16 and model.mask_padding = False"
    assert as_flags(error, args) == "model.heads = 2 and --ff-dim 16 and model.mask_padding = False"


def test_a_config_files_errors_keep_its_key_names(tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"model": {"heads": 0}}))
    code = main(["train", "d", "-o", str(tmp_path / "m"), "--config", str(config), "--heads", "3"])
    assert code == 2
    assert capsys.readouterr().err.endswith(
        "c.json: model.heads must be a positive integer, got 0\n"
    )
