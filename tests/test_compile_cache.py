"""The command line keeps compiled programs on disk, where the user's environment says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tandem.compile_cache import cache_dir


def test_cache_dir_follows_the_environment(tmp_path):
    assert cache_dir({"TANDEM_COMPILE_CACHE": "off"}) is None
    assert cache_dir({"TANDEM_COMPILE_CACHE": " OFF "}) is None
    assert cache_dir({"TANDEM_COMPILE_CACHE": str(tmp_path / "c")}) == tmp_path / "c"
    assert cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "tandem" / "jax"
    assert cache_dir({}) == Path.home() / ".cache" / "tandem" / "jax"


def translate(model_dir: Path, **environment: str) -> subprocess.CompletedProcess:
    """`tandem translate` in a fresh process, without the test session's JAX cache setting."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env.update(environment)
    command = [sys.executable, "-m", "tandem", "translate", str(model_dir), "Go.", "Hello!"]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


def test_translate_caches_its_programs_and_reads_them_back(tiny_model_dir, tmp_path):
    first = translate(tiny_model_dir, XDG_CACHE_HOME=str(tmp_path))
    cached = tmp_path / "tandem" / "jax"
    assert first.returncode == 0 and first.stderr == ""
    written = {path.name: path.stat().st_mtime_ns for path in cached.glob("*-cache")}
    assert written, "no compiled program was written"
    again = translate(tiny_model_dir, XDG_CACHE_HOME=str(tmp_path))
    assert again.returncode == 0 and again.stdout == first.stdout
    # Read back, not compiled and written anew: the same entries, untouched.
    assert {path.name: path.stat().st_mtime_ns for path in cached.glob("*-cache")} == written


def test_cache_can_be_moved_or_turned_off(tiny_model_dir, tmp_path):
    chosen = tmp_path / "chosen"
    done = translate(tiny_model_dir, TANDEM_COMPILE_CACHE=str(chosen), XDG_CACHE_HOME=str(tmp_path))
    assert done.returncode == 0 and sorted(chosen.iterdir())
    assert not (tmp_path / "tandem").exists()
    done = translate(tiny_model_dir, TANDEM_COMPILE_CACHE="off", XDG_CACHE_HOME=str(tmp_path))
    assert done.returncode == 0 and not (tmp_path / "tandem").exists()


def test_unwritable_cache_is_one_warning_and_no_failure(tiny_model_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    done = translate(tiny_model_dir, TANDEM_COMPILE_CACHE=str(blocker / "cache"))
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 2
    assert done.stderr.startswith(
        f"tandem: warning: compiled programs are not cached: cannot write to {blocker / 'cache'}"
    )
    assert done.stderr.count("\n") == 1
