"""The architecture's rules: import-linter contracts that fail by name, and the size limits."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "tandem"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MAX_FILE_LINES, MAX_FUNCTION_LINES = 450, 80

needs_linter = pytest.mark.skipif(
    not LINT_IMPORTS.exists(), reason="import-linter is not installed (pip install -e .[dev])"
)


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    """lint-imports with the project's contracts over the package copied under `tree`."""
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    shutil.copytree(PACKAGE, tmp_path / "src" / "tandem", ignore=shutil.ignore_patterns("*.pyc"))
    return tmp_path


@needs_linter
def test_the_contracts_hold(package_copy):
    done = lint_imports(package_copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " broken" not in done.stdout.lower().replace("0 broken", "")


@needs_linter
@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("decoding/greedy.py", "import tandem.models", "decoding sees only a step function"),
        ("models/layers.py", "from tandem.decoding import banned", "models import no decoding"),
        ("data/reading.py", "import keras", "data is numbers in, numbers out"),
        ("runtime/search.py", "import jax", "runtime decodes exported graphs"),
        ("runtime/translator.py", "import tandem.translator", "runtime decodes exported graphs"),
        ("model_dir.py", "import tandem.training", "loading and translating a model"),
        ("translator.py", "import tandem.cli", "nothing in the library imports the cli"),
        ("config/checks.py", "import tandem.model_dir", "no import cycles"),
    ],
)
def test_a_broken_rule_names_its_import(package_copy, module, line, contract):
    path = package_copy / "src" / "tandem" / module
    # Appended at the end so the import is real to the graph and breaks nothing at parse time.
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    done = lint_imports(package_copy)
    assert done.returncode != 0
    importer = "tandem." + module.removesuffix(".py").replace("/", ".")
    assert contract in done.stdout
    assert importer.removeprefix("tandem.") in done.stdout, done.stdout


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def test_no_file_or_function_is_too_long_to_read():
    files = sorted(PACKAGE.rglob("*.py"))
    assert files
    long_files = [
        f"{path.relative_to(ROOT)} ({lines})"
        for path in files
        if (lines := len(path.read_text().splitlines())) > MAX_FILE_LINES
    ]
    long_functions = [entry for path in files for entry in _long_functions(path)]
    assert not long_files, f"over {MAX_FILE_LINES} lines: {long_files}"
    assert not long_functions, f"over {MAX_FUNCTION_LINES} lines: {long_functions}"
