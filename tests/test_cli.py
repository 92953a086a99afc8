"""The command line: train, translate, evaluate; bad input is one line and exit code 2."""

import importlib.util
import json
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_PAIRS
from tandem.cli import main, resume_command
from tandem.translator import WINDOW_BATCHES


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_train_translate_evaluate(tmp_path, capsys, tiny_tsv):
    model = tmp_path / "model"
    code, _, err = run(
        capsys,
        "train",
        str(tiny_tsv),
        "-o",
        str(model),
        "--epochs",
        "2",
        "--latent-dim",
        "8",
        "--batch-size",
        "4",
        "--max-samples",
        "10",
        "--max-target-length",
        "40",  # leaves out nothing: said only when it does (below)
        "-q",
    )
    assert code == 0, err
    assert "trained 2 epochs on 8 pairs" in err and "left out" not in err
    config = json.loads((model / "config.json").read_text())
    assert config["data"]["max_samples"] == 10 and config["model"]["latent_dim"] == 8

    code, out, _ = run(capsys, "translate", str(model), "Go.", "Hello!", "--format", "json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["source"] for r in rows] == ["Go.", "Hello!"]

    code, out, _ = run(capsys, "evaluate", str(model), str(tiny_tsv), "--format", "json")
    report = json.loads(out)
    assert code == 0
    assert report["n_sources"] == 12 and report["signatures"]["chrf"].startswith("nrefs")
    assert {"chrf", "bleu", "exact_match", "model_dir", "data", "decoding"} <= set(report)
    assert report["decoding"] == {  # a greedy search's settings: no beam size, no seed
        "strategy": "greedy", "batch_size": 64, "max_length": report["decoding"]["max_length"],
        "overlong": "truncate",
    }  # fmt: skip

    # Training into it again replaces the model only when asked to.
    weights = (model / "model.keras").read_bytes()
    again = ["train", str(tiny_tsv), "-o", str(model), "--epochs", "1", "--latent-dim", "4", "-q"]
    code, _, err = run(capsys, *again)
    assert code == 2 and err == (
        f"tandem: error: {model}: holds a trained model; train into a new directory, or pass "
        "--overwrite to replace it\n"
    )
    assert (model / "model.keras").read_bytes() == weights
    code, _, err = run(capsys, *again, "--overwrite", "--resume")
    assert code == 2 and "choose one" in err
    # A replacement refused for its data leaves the old model whole.
    before = sorted(path.name for path in model.rglob("*"))
    code, _, err = run(capsys, *again, "--overwrite", "--max-target-length", "1")
    assert code == 2 and "no sentence pairs left after the length limits" in err
    assert sorted(path.name for path in model.rglob("*")) == before
    assert (model / "model.keras").read_bytes() == weights
    code, out, _ = run(capsys, "translate", str(model), "Go.")
    assert code == 0 and len(out.splitlines()) == 1
    code, _, err = run(capsys, *again, "--overwrite")
    assert code == 0 and "trained 1 epoch on 10 pairs" in err, err
    assert json.loads((model / "config.json").read_text())["model"]["latent_dim"] == 4


def test_translate_reads_stdin_and_keeps_empty_lines(tiny_model_dir, monkeypatch, capsys):
    import io

    stdin = io.TextIOWrapper(io.BytesIO(b"Go.\n\nHello!\n"), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    code, out, _ = run(capsys, "translate", str(tiny_model_dir))
    assert code == 0
    lines = out.split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""


def test_evaluate_text_output(tiny_model_dir, tiny_tsv, capsys):
    code, out, _ = run(capsys, "evaluate", str(tiny_model_dir), str(tiny_tsv))
    assert code == 0
    assert out.startswith("chrF") and "nrefs:" in out and "exact" in out


@pytest.mark.parametrize(
    "content, message",
    [
        (b"Go.\tVa !\nno tab here\n", "bad.tsv:2: line has no tab"),
        (b"Go.\tVa !\n\tVide\n", "bad.tsv:2: empty source"),
        (b"Go.\tVa !\nHi.\t\xff\xfe\n", "bad.tsv:2: invalid UTF-8"),
        (b"", "bad.tsv: no sentence pairs"),
        (b"Go.\tVa !\rHi.\tSalut !\r", "bad.tsv:1: carriage return inside the target"),
    ],
)
def test_bad_training_data_is_one_line_and_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "bad.tsv"
    path.write_bytes(content)
    code, _, err = run(capsys, "train", str(path), "-o", str(tmp_path / "m"), "--epochs", "1")
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_skip_bad_lines_reports_the_count(tmp_path, capsys):
    path = tmp_path / "some-bad.tsv"
    good = "".join(f"Go{i}.\tVa{i} !\n" for i in range(6))
    path.write_text("oops\n" + good + "also bad\n", encoding="utf-8")
    code, _, err = run(
        capsys,
        "train",
        str(path),
        "-o",
        str(tmp_path / "m"),
        "--epochs",
        "1",
        "--latent-dim",
        "4",
        "--skip-bad-lines",
        "-q",
    )
    assert code == 0
    assert "skipped 2 bad lines" in err


def test_missing_files_and_bad_options(tmp_path, capsys, tiny_model_dir):
    code, _, err = run(capsys, "train", str(tmp_path / "none.tsv"), "-o", str(tmp_path / "m"))
    assert code == 2 and "none.tsv: no such file" in err
    code, _, err = run(capsys, "translate", str(tmp_path / "nomodel"), "Go.")
    assert code == 2 and "no such model directory" in err
    code, _, err = run(capsys, "train", str(tmp_path), "-o", str(tmp_path / "m"), "--epochs", "0")
    assert code == 2 and "--epochs must be a positive integer" in err
    code, _, err = run(capsys, "translate", str(tiny_model_dir), "Go." * 30, "--overlong", "error")
    assert code == 2 and "longer than the model's maximum" in err


def test_module_entry_point_has_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tandem", "evaluate", str(tmp_path), str(tmp_path / "x.tsv")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("tandem: error:") and "Traceback" not in result.stderr


def test_output_is_utf8_whatever_the_locale(tiny_model_dir):
    import os

    result = subprocess.run(
        [sys.executable, "-m", "tandem", "translate", str(tiny_model_dir), "Café", "--format",
         "json"],
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "ascii"},
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.decode("utf-8"))["source"] == "Café"


def test_arguments_and_paths_that_are_not_utf8(tiny_model_dir, tmp_path, capsys):
    import os

    # Python keeps a command line's bytes that are not UTF-8 as lone surrogates.
    code, out, err = run(capsys, "translate", str(tiny_model_dir), "Go.", os.fsdecode(b"caf\xe9"))
    assert code == 2 and out == ""
    assert err == (
        "tandem: error: argument 2 is not valid UTF-8: 'caf\ufffd' (tandem reads and writes "
        "UTF-8, whatever the locale)\n"
    )
    data = tmp_path / os.fsdecode(b"d\xe9mo.tsv")
    data.write_text("Go.\tVa !\n", encoding="utf-8")
    code, out, _ = run(capsys, "evaluate", str(tiny_model_dir), str(data), "--format", "json")
    assert code == 0 and json.loads(out)["data"].endswith("d\ufffdmo.tsv")


def test_translate_answers_each_line_of_a_pipe_as_it_comes(tiny_model_dir):
    # A program that writes a line and waits for its translation before writing the next.
    process = subprocess.Popen(
        [sys.executable, "-m", "tandem", "translate", str(tiny_model_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        answers = []
        for source in ("Go.", "Hello!", ""):
            process.stdin.write(source + "\n")
            process.stdin.flush()
            ready, _, _ = select.select([process.stdout], [], [], 120)
            assert ready, f"no translation of {source!r} while the input stays open"
            answers.append(process.stdout.readline())
        process.stdin.close()
        assert process.wait(timeout=60) == 0 and process.stdout.read() == ""
    finally:
        process.kill()
    assert answers[2] == "\n" and all(answer.endswith("\n") for answer in answers)


def test_resume_command_is_the_run_s_own_with_resume():
    argv = ["train", "my data.tsv", "-o", "m", "--overwrite", "--epochs", "5"]
    assert resume_command(argv) == "tandem train 'my data.tsv' -o m --epochs 5 --resume"
    assert resume_command(["train", "d.tsv", "-o", "m", "--overw"]) == (
        "tandem train d.tsv -o m --resume"  # an abbreviated --overwrite is left out too
    )
    assert resume_command(["train", "d.tsv", "-o", "m", "--resume", "--epochs", "9"]) == (
        "tandem train d.tsv -o m --resume --epochs 9"
    )


def in_subprocess(*argv: str, backend: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "KERAS_BACKEND": backend}
    command = [sys.executable, "-m", "tandem", *argv]
    return subprocess.run(command, capture_output=True, text=True, env=environment, check=False)


def test_numpy_backend_translates_a_model_and_refuses_to_train(tiny_model_dir, tmp_path, capsys):
    sources = ["Go.", "Hello!", "Wait!"]
    code, jax_greedy, _ = run(capsys, "translate", str(tiny_model_dir), *sources)
    greedy = in_subprocess("translate", str(tiny_model_dir), *sources, backend="numpy")
    assert code == 0 and greedy.returncode == 0 and greedy.stdout == jax_greedy
    beam = in_subprocess("translate", str(tiny_model_dir), *sources, "--beam", "3", "--nbest",
                         "2", backend="numpy")  # fmt: skip
    assert beam.returncode == 0 and len(beam.stdout.splitlines()) == 2 * len(sources)
    sampling = ("translate", str(tiny_model_dir), *sources, "--sample", "--seed", "3")
    drawn = [in_subprocess(*sampling, backend="numpy") for _ in range(2)]
    assert drawn[0].returncode == 0 and len(drawn[0].stdout.splitlines()) == len(sources)
    assert drawn[0].stdout == drawn[1].stdout  # the same seed, the same draws
    data = tmp_path / "data.tsv"
    data.write_text("Go.\tVa !\n", encoding="utf-8")
    refused = in_subprocess("train", str(data), "-o", str(tmp_path / "m"), backend="numpy")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert refused.stderr.startswith("tandem: error: the numpy backend cannot train")
    assert not (tmp_path / "m").exists()


def test_unusable_keras_backend_is_one_line(tiny_model_dir, capsys, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jaxx")
    code, _, err = run(capsys, "translate", str(tiny_model_dir), "Go.")
    assert code == 2 and err == (
        "tandem: error: KERAS_BACKEND=jaxx: not a Keras backend "
        "(one of jax, torch, tensorflow, numpy, openvino)\n"
    )
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # not installed
    code, _, err = run(capsys, "translate", str(tiny_model_dir), "Go.")
    assert code == 2 and err.startswith(
        "tandem: error: KERAS_BACKEND=tensorflow: tensorflow is not installed"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--preset", "seed"], {"inputs": "one_hot", "mask_padding": False, "attention": "none"}),
        (
            [
                "--cell",
                "gru",
                "--layers",
                "2",
                "--dropout",
                "0.1",
                "--embedding-dropout",
                "0.2",
                "--output-dropout",
                "0.3",
                "--bidirectional",
                "--attention",
                "bahdanau",
                "--input-feeding",
                "--embedding-dim",
                "6",
            ],
            {
                "cell": "gru",
                "num_layers": 2,
                "bidirectional": True,
                "attention": "bahdanau",
                "input_feeding": True,
                "embedding_dim": 6,
                "mask_padding": True,
                "embedding_dropout": 0.2,
                "output_dropout": 0.3,
            },
        ),
        (
            ["--family", "transformer", "--heads", "2", "--ff-dim", "16", "--layers", "2"],
            {
                "family": "transformer",
                "heads": 2,
                "ff_dim": 16,
                "num_layers": 2,
                "embedding_dim": 8,  # a transformer's embeddings follow --latent-dim
            },
        ),
    ],
)
def test_train_model_flags_reach_the_model(tmp_path, capsys, tiny_tsv, flags, expected):
    model = tmp_path / "model"
    code, _, err = run(
        capsys,
        "train",
        str(tiny_tsv),
        "-o",
        str(model),
        "--epochs",
        "1",
        "--latent-dim",
        "8",
        "--batch-size",
        "4",
        "-q",
        *flags,
    )
    assert code == 0, err
    config = json.loads((model / "config.json").read_text())["model"]
    assert {key: config[key] for key in expected} == expected
    code, out, _ = run(capsys, "translate", str(model), "Go.", "--beam", "2", "--format", "tsv")
    assert code == 0 and out.startswith("Go.\t")


def test_input_feeding_without_attention_is_refused(tmp_path, capsys, tiny_tsv):
    code, _, err = run(capsys, "train", str(tiny_tsv), "-o", str(tmp_path / "m"), "--input-feeding")
    assert code == 2 and "--input-feeding needs attention" in err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--attention", "dot"], "--attention dot applies to the rnn family only"),
        (["--no-masking"], "--no-masking applies to the rnn family only"),  # a switch alone
        (["--bidirectional"], "--bidirectional applies to the rnn family only"),
    ],
)
def test_rnn_settings_on_a_transformer_are_refused(tmp_path, capsys, tiny_tsv, flags, message):
    model = str(tmp_path / "m")
    code, _, err = run(capsys, "train", str(tiny_tsv), "-o", model, "--family", "transformer",
                       *flags)  # fmt: skip
    assert code == 2 and message in err
    assert err.count("\n") == 1 and not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--heads", "2"], "--heads 2 has no effect without the transformer family"),
        (["--ff-dim", "16"], "--ff-dim 16 has no effect without the transformer family"),
        (
            ["--inputs", "one_hot", "--embedding-dim", "4"],
            "--embedding-dim 4 has no effect without inputs: embedding",
        ),  # fmt: skip
        (
            ["--warmup-steps", "5"],
            "--warmup-steps 5 has no effect without lr_schedule: inverse_sqrt",
        ),  # fmt: skip
        (
            ["--adam-beta-2", "0.9"],
            "--adam-beta-2 0.9 has no effect without optimizer: adam",
        ),  # fmt: skip
        (
            ["--lr-patience", "2"],
            "--lr-patience 2 has no effect without lr_schedule: plateau",
        ),  # fmt: skip
        (
            ["--lr-factor", "0.3"],
            "--lr-factor 0.3 has no effect without lr_schedule: plateau",
        ),  # fmt: skip
        (
            ["--spm-vocab-size", "100"],
            "--spm-vocab-size 100 has no effect without spm tokens on a side",
        ),  # fmt: skip
        (
            ["--score-every", "1", "--validation-split", "0"],
            "--score-every 1 has no effect without a validation split",
        ),  # fmt: skip
        (["--layers", "100000"], "--layers must be at most 256, got 100000"),
    ],
)
def test_settings_that_would_change_nothing_are_refused(tmp_path, capsys, tiny_tsv, flags, message):
    code, _, err = run(capsys, "train", str(tiny_tsv), "-o", str(tmp_path / "m"), *flags)
    assert (code, err) == (2, f"tandem: error: {message}\n")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--max-length", "100000000"], "--max-length must be at most 10,000"),
        (["--beam", "30000000"], "--beam must be at most 256"),
    ],
)
def test_searches_too_large_to_run_are_refused(tiny_model_dir, tiny_tsv, capsys, argv, message):
    model = str(tiny_model_dir)
    for command in (["translate", model, "Go."], ["evaluate", model, str(tiny_tsv)]):
        code, out, err = run(capsys, *command, *argv)
        assert code == 2 and out == "" and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--embedding-dim", "0"], "--embedding-dim must be a positive integer, got 0"),
        (["--seed", "-1"], "--seed must be an integer in [0, 2**32 - 1], got -1"),
        (["--seed", str(2**32)], "--seed must be an integer in [0, 2**32 - 1]"),
    ],
)
def test_out_of_range_options_are_refused_before_anything_is_written(
    tmp_path, capsys, tiny_tsv, flags, message
):
    code, _, err = run(capsys, "train", str(tiny_tsv), "-o", str(tmp_path / "m"), *flags)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "m").exists()


def test_an_output_below_a_file_is_one_line(tmp_path, capsys, tiny_tsv):
    (tmp_path / "afile").write_text("not a directory\n", encoding="utf-8")
    output = tmp_path / "afile" / "model"
    code, _, err = run(capsys, "train", str(tiny_tsv), "-o", str(output), "--epochs", "1")
    assert code == 2 and f"{output}: cannot create the directory" in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "failure",
    [
        MemoryError(),
        RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 25830642128 bytes."),
        # How XLA's CPU client reports it when building a model far too large.
        RuntimeError(
            "INTERNAL: Error dispatching computation: Out of memory allocating "
            "144000000000000 bytes."
        ),
    ],
)
def test_out_of_memory_is_one_line_with_what_to_do(
    tmp_path, capsys, tiny_tsv, monkeypatch, failure
):
    import tandem.training

    def exhausted(*args, **kwargs):
        raise failure

    monkeypatch.setattr(tandem.training, "train", exhausted)
    code, _, err = run(capsys, "train", str(tiny_tsv), "-o", str(tmp_path / "m"), "--epochs", "1")
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("tandem: error: out of memory") and "--max-source-length" in err


def test_out_of_memory_while_decoding_names_the_search_options(tiny_model_dir, capsys, monkeypatch):
    from tandem.translator import Translator

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(Translator, "translate_stream", exhausted)
    code, _, err = run(capsys, "translate", str(tiny_model_dir), "Go.", "--beam", "200")
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("tandem: error: out of memory; a search holds --batch-size sources")


def test_other_runtime_errors_are_not_called_out_of_memory(tmp_path, capsys, tiny_tsv, monkeypatch):
    import tandem.training

    def broken(*args, **kwargs):
        raise RuntimeError("something else")

    monkeypatch.setattr(tandem.training, "train", broken)
    with pytest.raises(RuntimeError, match="something else"):
        run(capsys, "train", str(tiny_tsv), "-o", str(tmp_path / "m"), "--epochs", "1")


def test_errors_name_the_flags_given_and_the_keys_of_a_config_file(tmp_path, capsys, tiny_tsv):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"model": {"heads": 2}}))
    code, _, err = run(capsys, "train", str(tiny_tsv), "-o", str(tmp_path / "m"), "--config",
                       str(config), "--ff-dim", "16", "--lr-factor", "0")  # fmt: skip
    assert (code, err) == (2, "tandem: error: --lr-factor must be in (0, 1), got 0.0\n")
    code, _, err = run(capsys, "train", str(tiny_tsv), "-o", str(tmp_path / "m"), "--config",
                       str(config), "--ff-dim", "16")  # fmt: skip
    assert code == 2 and err.startswith("tandem: error: model.heads = 2 has no effect"), err
    assert "; --ff-dim 16 has no effect without the transformer family" in err


def test_preset_seed_does_not_silently_replace_a_config_files_model(tmp_path, capsys, tiny_tsv):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"model": {"cell": "gru"}, "train": {"epochs": 1}}))
    output = tmp_path / "m"
    code, _, err = run(capsys, "train", str(tiny_tsv), "-o", str(output), "--config", str(config),
                       "--preset", "seed")  # fmt: skip
    assert code == 2 and "c.json: sets model options, and --preset seed replaces" in err
    assert not output.exists()


def test_tsv_output_keeps_one_row_of_three_fields_per_hypothesis(tiny_model_dir, capsys):
    sources = ["Go.\tVa", "Go.\nHi.", "a\\b", ""]
    code, out, _ = run(capsys, "translate", str(tiny_model_dir), *sources, "--beam", "2",
                       "--nbest", "2", "--format", "tsv")  # fmt: skip
    rows = [line.split("\t") for line in out.splitlines()]
    assert code == 0 and len(rows) == 2 * len(sources)  # nbest rows for every source
    assert all(len(row) == 3 for row in rows)
    assert [row[0] for row in rows[::2]] == ["Go.\\tVa", "Go.\\nHi.", "a\\\\b", ""]


def test_the_seed_preset_names_itself_beside_another_family(tmp_path, tiny_tsv, capsys):
    code, _, err = run(capsys, "train", str(tiny_tsv), "-o", str(tmp_path / "m"), "--preset",
                       "seed", "--family", "transformer")  # fmt: skip
    assert code == 2 and "--preset seed is the example's rnn model; it does not combine " in err
    assert not (tmp_path / "m").exists()


def test_every_strategy_scores_its_output(tiny_model_dir, capsys):
    for flags in ([], ["--sample", "--seed", "2"], ["--beam", "2"]):
        code, out, _ = run(capsys, "translate", str(tiny_model_dir), "Go.", "", *flags,
                           "--format", "tsv")  # fmt: skip
        rows = [line.split("\t") for line in out.splitlines()]
        # A log-probability for a decoded source; nothing for an empty one, never decoded.
        assert code == 0 and float(rows[0][2]) < 0 and rows[1][2] == "", flags


def test_text_output_has_nbest_lines_for_every_source(tiny_model_dir, capsys):
    code, out, _ = run(capsys, "translate", str(tiny_model_dir), "Go.", "", "Hi.", "--beam",
                       "3", "--nbest", "2")  # fmt: skip
    assert code == 0 and len(out.splitlines()) == 6 and out.splitlines()[2:4] == ["", ""]
    # Fewer hypotheses than asked for exist (one token each): empty lines fill the text
    # format, and the json lists only the real ones, never an -Infinity score.
    many = ("translate", str(tiny_model_dir), "Go.", "Hi.", "--beam", "100", "--nbest", "100",
            "--max-length", "1")  # fmt: skip
    code, out, _ = run(capsys, *many)
    assert code == 0 and len(out.splitlines()) == 200 and out.splitlines()[-1] == ""
    code, out, _ = run(capsys, *many, "--format", "json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and "Infinity" not in out and 1 < len(rows[0]["hypotheses"]) < 100


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--beam", "3", "--sample"], "--beam and --sample are two strategies: choose one"),
        (["--temperature", "0.5"], "--temperature: for --sample only, which is not chosen"),
        (["--beam", "2", "--seed", "1", "--top-k", "3"], "--top-k, --seed: for --sample only"),
        (["--alpha", "0.6"], "--alpha: for --beam only, which is not chosen"),
        (["-i", "x.txt"], "give texts as arguments or a file with --input, not both"),
    ],
)
def test_contradictory_decoding_options_are_refused(tiny_model_dir, capsys, flags, message):
    code, out, err = run(capsys, "translate", str(tiny_model_dir), "Go.", *flags)
    assert code == 2 and out == "" and message in err and err.count("\n") == 1


def test_a_truncated_source_is_a_one_line_warning(tiny_model_dir, capsys, tmp_path):
    code, out, err = run(capsys, "translate", str(tiny_model_dir), "Go.", "Go." * 30)
    assert code == 0 and len(out.splitlines()) == 2
    assert err.startswith("tandem: warning: argument 2: source of 90 tokens is longer")
    assert err.count("\n") == 1
    # From a file or stdin, by file and line, as --overlong error names them.
    lines = tmp_path / "in.txt"
    lines.write_text("Go.\n" + "Hi." * 30 + "\n", encoding="utf-8")
    code, out, err = run(capsys, "translate", str(tiny_model_dir), "-i", str(lines))
    assert code == 0 and len(out.splitlines()) == 2
    assert err.startswith(f"tandem: warning: {lines}:2: source of 90 tokens is longer")


def test_an_overlong_source_in_a_file_is_named_by_file_and_line(tiny_model_dir, tmp_path, capsys):
    sources = tmp_path / "in.txt"
    sources.write_text("Go.\n\n" + "Go." * 30 + "\n", encoding="utf-8")
    code, _, err = run(capsys, "translate", str(tiny_model_dir), "-i", str(sources),
                       "--overlong", "error")  # fmt: skip
    assert code == 2 and f"{sources}:3: source of 90 tokens is longer than the model's" in err
    code, _, err = run(capsys, "translate", str(tiny_model_dir), "Go.", "Go." * 30,
                       "--overlong", "error")  # fmt: skip
    assert code == 2 and "argument 2: source of 90 tokens" in err


def test_evaluate_reports_the_lines_it_skipped(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "some-bad.tsv"
    data.write_text("Go.\tVa !\nno tab here\nHello!\tSalut !\n", encoding="utf-8")
    code, _, err = run(capsys, "evaluate", str(tiny_model_dir), str(data), "--skip-bad-lines")
    assert code == 0 and f"skipped 1 bad line in {data}" in err


def test_warnings_are_written_above_the_progress_bar(tiny_model_dir, tmp_path, capsys):
    # In the second window of sentences (batch 1), with more to read: the bar is on screen
    # when the warning comes.
    lines = ["Go."] * WINDOW_BATCHES + ["Go." * 30] + ["Hi."] * 2 * WINDOW_BATCHES
    data = tmp_path / "in.txt"
    data.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    code, out, err = run(capsys, "translate", str(tiny_model_dir), "-i", str(data), "--progress",
                         "on", "--batch-size", "1")  # fmt: skip
    assert code == 0 and len(out.splitlines()) == len(lines)
    # The bar redraws itself after "\r"; the warning is a line of its own, not inside one.
    segments = [part for chunk in err.split("\n") for part in chunk.split("\r")]
    assert "translating" in err
    warning = f"tandem: warning: {data}:{WINDOW_BATCHES + 1}: source of 90 tokens"
    assert any(part.startswith(warning) for part in segments)


@pytest.mark.slow
def test_train_says_how_many_pairs_the_length_limits_left_out(tmp_path, capsys, tiny_tsv):
    code, _, err = run(capsys, "train", str(tiny_tsv), "-o", str(tmp_path / "m"), "--epochs",
                       "1", "--latent-dim", "8", "--max-target-length", "8", "-q")  # fmt: skip
    longer = sum(len(target) > 8 for _, target in TINY_PAIRS)
    assert code == 0 and longer > 0, err
    assert err.rstrip().endswith(f"; left out {longer} pairs over the length limits")


def test_translate_takes_options_and_texts_in_any_order(tiny_model_dir, capsys):
    model = str(tiny_model_dir)
    _, expected, _ = run(capsys, "translate", model, "Go.", "Hi.", "--beam", "2")
    assert len(expected.splitlines()) == 2
    for argv in (
        [model, "--beam", "2", "Go.", "Hi."],
        [model, "Go.", "--beam", "2", "Hi."],
        ["--beam", "2", model, "--", "Go.", "Hi."],
    ):
        assert run(capsys, "translate", *argv) == (0, expected, ""), argv
    with pytest.raises(SystemExit) as exited:
        main(["translate"])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.endswith("error: the following arguments are required: model_dir\n")  # no text


def test_translate_takes_every_text_after_the_first_double_dash(tiny_model_dir, capsys):
    # A `--` after the first is a text like any other: one output line each, in order.
    model = str(tiny_model_dir)
    code, out, err = run(capsys, "translate", model, "--format", "json", "--", "a", "--", "-b",
                         "--", "--beam")  # fmt: skip
    assert code == 0, err
    sources = [json.loads(line)["source"] for line in out.splitlines()]
    assert sources == ["a", "--", "-b", "--", "--beam"]
    code, out, _ = run(capsys, "translate", "--format", "json", "--", model, "--")
    assert code == 0 and [json.loads(line)["source"] for line in out.splitlines()] == ["--"]


def test_the_progress_bar_counts_lines_translated(tiny_model_dir, tmp_path, capsys):
    # The first window is translated and written; the overlong line in the second stops the
    # run, after the whole file has been read.
    lines = ["Go."] * WINDOW_BATCHES + ["Go." * 30] + ["Hi."] * 3
    data = tmp_path / "in.txt"
    data.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    code, out, err = run(capsys, "translate", str(tiny_model_dir), "-i", str(data), "--progress",
                         "on", "--batch-size", "1", "--overlong", "error")  # fmt: skip
    assert code == 2 and len(out.splitlines()) == WINDOW_BATCHES
    last_bar = [part for part in err.replace("\n", "\r").split("\r") if "translating" in part][-1]
    assert f"translating: {WINDOW_BATCHES} lines" in last_bar


def test_evaluate_refuses_nbest_it_would_not_score(tiny_model_dir, tiny_tsv, capsys):
    code, out, err = run(capsys, "evaluate", str(tiny_model_dir), str(tiny_tsv), "--beam", "3",
                         "--nbest", "2")  # fmt: skip
    assert code == 2 and out == ""
    assert err == "tandem: error: --nbest: evaluate scores one output per source (the best)\n"
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "--nbest" not in capsys.readouterr().out


def test_evaluate_with_a_target_file_names_both(tiny_model_dir, tmp_path, capsys):
    sources, targets = tmp_path / "s.txt", tmp_path / "t.txt"
    sources.write_text("Go.\nHi.\nRun!\n", encoding="utf-8")
    targets.write_text("Va !\n \nCours !\n", encoding="utf-8")  # line 2: no target
    code, out, err = run(capsys, "evaluate", str(tiny_model_dir), str(sources), "--target",
                         str(targets), "--skip-bad-lines", "--format", "json")  # fmt: skip
    assert code == 0 and f"skipped 1 bad line in {sources} + {targets}" in err
    report = json.loads(out)
    assert (report["data"], report["target"]) == (str(sources), str(targets))
    assert report["multi_reference"] is False and report["max_samples"] is None


def test_evaluate_sums_up_truncated_sources_in_one_warning(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "long.tsv"
    data.write_text("Go.\tVa !\n" + "".join(f"{'Go.' * n}\tVa !\n" for n in (20, 30)), "utf-8")
    code, out, err = run(capsys, "evaluate", str(tiny_model_dir), str(data), "--format", "json")
    assert code == 0 and json.loads(out)["truncated_sources"] == 2
    assert err.count("\n") == 1
    assert err.startswith(f"tandem: warning: {data}: 2 of 3 sources are longer than the model's")


def test_closed_standard_streams_are_one_line(tiny_model_dir, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)  # started with `<&-`
    code, _, err = run(capsys, "translate", str(tiny_model_dir))
    assert code == 2 and err == "tandem: error: <stdin>: standard input is closed\n"
    monkeypatch.setattr(sys, "stdout", None)  # `>&-`: print would drop every result silently
    code = main(["translate", str(tiny_model_dir), "Go."])
    err = capsys.readouterr().err
    assert code == 2 and "standard output is closed" in err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_output_is_one_line_and_exit_1(tiny_model_dir):
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "tandem", "translate", str(tiny_model_dir), "Go."],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr == "tandem: error: No space left on device\n"


def test_a_too_small_subword_vocabulary_is_one_line(tmp_path, capsys, tiny_tsv):
    code, _, err = run(
        capsys, "train", str(tiny_tsv), "-o", str(tmp_path / "m"), "--target-tokens", "spm",
        "--spm-vocab-size", "3", "--epochs", "1", "-q",
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1
    assert "data.spm_vocab_size 3 is too small for these texts: SentencePiece needs" in err


def test_a_run_killed_in_its_first_epoch_is_called_that(tiny_model_dir, tmp_path, capsys):
    from tandem.model_dir import MANIFEST_FILE, _manifest, read_manifest
    from tandem.models import ModelDims

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    shutil.rmtree(model / "checkpoints")
    dims = ModelDims(**read_manifest(model)["dims"])
    (model / MANIFEST_FILE).write_text(json.dumps(_manifest(dims, complete=False, train_data=None)))
    code, _, err = run(capsys, "translate", str(model), "Go.")
    assert code == 2 and "training stopped before its first epoch ended" in err
    assert "--resume" not in err  # there is nothing to resume
    # Started again with the options it was started with, as the message says.
    assert f"`tandem train DATA -o {model} --config {model / 'config.json'} --overwrite`" in err
    data = tmp_path / "data.tsv"
    data.write_text("Go.\tVa !\nHi.\tSalut !\n", encoding="utf-8")
    again = ["train", str(data), "-o", str(model), "--config", str(model / "config.json")]
    code, _, err = run(capsys, *again, "--overwrite", "--epochs", "1", "-q")
    assert (
        code == 0
        and json.loads((model / "config.json").read_text())["model"]["latent_dim"]
        == (json.loads((tiny_model_dir / "config.json").read_text())["model"]["latent_dim"])
    )


def test_translate_refuses_lines_ending_in_cr_alone(tiny_model_dir, tmp_path, capsys):
    path = tmp_path / "cr.txt"
    path.write_bytes(b"Go.\nHi.\rRun!\r")  # read as one line, two sentences would become one
    code, out, err = run(capsys, "translate", str(tiny_model_dir), "-i", str(path))
    assert code == 2 and out.count("\n") <= 1  # at most line 1, translated before line 2 is read
    assert (
        err
        == f"tandem: error: {path}:2: carriage return inside the line (lines ending in CR alone?)\n"
    )
