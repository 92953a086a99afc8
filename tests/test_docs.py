"""The docs' commands run as written against a tiny demo, and their links lead somewhere."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# The pages whose ```sh commands the test runs (the others show runs that take long).
RUN_PAGES = [ROOT / "README.md", ROOT / "docs" / "cli.md"]
SHELL_SYNTAX = re.compile(r"[|<>;&$`]")


def sh_commands(page: Path) -> list[str]:
    """The commands of a page's ```sh blocks: comments dropped, continued lines joined."""
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```", page.read_text(encoding="utf-8"), re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            command = line.split("  #")[0].split(" # ")[0].strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def demo_commands() -> list[tuple[str, str]]:
    """(page, command) for the commands of RUN_PAGES, in page order (later ones may use what
    earlier ones wrote); `make demo` and `make test` are not run."""
    return [
        (page.name, command)
        for page in RUN_PAGES
        for command in sh_commands(page)
        if not command.startswith("make ")
    ]


def test_the_pages_show_demo_commands():
    commands = [command for _, command in demo_commands()]
    assert all("runs/" in command for command in commands), commands
    assert any(command.startswith("tandem translate") for command in commands)
    assert any(command.startswith("tandem evaluate") for command in commands)
    assert any(command.startswith("tandem train") for command in commands)


@pytest.fixture(scope="module")
def demo_cwd(tmp_path_factory) -> Path:
    """A directory whose runs/demo has the demo's data files and a small attention model (the
    commands use only that one of the demo's models)."""
    from tandem.config import Config
    from tandem.data.demo_data import make_demo_pairs, split_pairs, write_tsv
    from tandem.training import train

    cwd = tmp_path_factory.mktemp("docs")
    demo = cwd / "runs" / "demo"
    (demo / "data").mkdir(parents=True)
    train_pairs, test_pairs = split_pairs(make_demo_pairs(120, 0), 0.1, 0)
    write_tsv(train_pairs, demo / "data" / "train.tsv")
    write_tsv(test_pairs, demo / "data" / "test.tsv")
    # The model of the pages' `tandem train` examples: they then compile nothing new (tests
    # share a compilation cache, see conftest.py), and this test stays short.
    config = Config().replace("model", cell="gru", attention="dot", latent_dim=64)
    train(train_pairs, config.replace("train", epochs=1), demo / "attention", verbose=0)
    (cwd / "configs").symlink_to(ROOT / "configs", target_is_directory=True)
    return cwd


@pytest.mark.slow
def test_demo_commands_run_as_written(demo_cwd, monkeypatch):
    from tandem.cli import main

    monkeypatch.chdir(demo_cwd)
    for page, command in demo_commands():
        words = shlex.split(command)
        missing = [w for w in words if w.startswith("configs/") and not (ROOT / w).exists()]
        if missing:  # the recipes are written by hand; run once they are there
            continue
        if SHELL_SYNTAX.search(command):  # a pipe or redirection: through the shell
            tandem = f"{shlex.quote(sys.executable)} -m tandem"
            env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TANDEM_KEEP_FREED_MEMORY": "0"}
            script = f'tandem() {{ {tandem} "$@"; }}\n{command}'
            result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
            assert result.returncode == 0, f"{page}: {command}\n{result.stderr}"
        else:
            assert words[0] == "tandem", f"{page}: {command}"
            assert main(words[1:]) == 0, f"{page}: {command}"


@pytest.mark.slow
def test_readme_python_runs_as_written(demo_cwd, monkeypatch, capsys):
    monkeypatch.chdir(demo_cwd)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for block in re.findall(r"^```python\n(.*?)^```", readme, re.M | re.S):
        exec(compile(block, "README.md", "exec"), {})


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {anchor(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_relative_links_lead_to_files_and_headings(page):
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no such heading")
    assert not broken, f"{page.name}: {broken}"
