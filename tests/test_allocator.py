"""The command line re-runs itself under glibc settings that keep freed memory in the process."""

from __future__ import annotations

import os
import sys

import pytest

from tandem import allocator, cli
from tandem.allocator import KEEP_FREED_MEMORY, OPT_OUT, relaunch_environment


def test_the_settings_are_added_to_the_environment_under_glibc():
    environment = relaunch_environment({"PATH": "/bin", "KERAS_BACKEND": "jax"}, "glibc")
    assert environment == {"PATH": "/bin", "KERAS_BACKEND": "jax", **KEEP_FREED_MEMORY}
    assert environment["MALLOC_ARENA_MAX"] == "1"
    assert environment["MALLOC_MMAP_MAX_"] == "0"


@pytest.mark.parametrize(
    "environ, libc",
    [
        ({"PATH": "/bin"}, ""),  # not glibc: the settings would mean nothing
        ({"PATH": "/bin"}, "musl"),
        ({OPT_OUT: "0"}, "glibc"),  # the user turned it off
        (dict(KEEP_FREED_MEMORY), "glibc"),  # already relaunched: no loop
        ({"MALLOC_ARENA_MAX": "4"}, "glibc"),  # the user's own allocator settings win
    ],
)
def test_no_relaunch_when_not_glibc_turned_off_or_already_set(environ, libc):
    assert relaunch_environment(environ, libc) is None


class Relaunched(Exception):
    """Raised by the stand-in for os.execve, with what it was asked to run."""


def fake_execve(path, arguments, environment):
    raise Relaunched(path, arguments, environment)


@pytest.fixture
def glibc_linux(monkeypatch):
    """A Linux with glibc, and an environment with no MALLOC_ setting and no opt-out."""
    monkeypatch.setattr(allocator.sys, "platform", "linux")
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("glibc", "2.36"))
    for name in [name for name in os.environ if name.startswith("MALLOC_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv(OPT_OUT, raising=False)


def test_the_program_relaunches_itself_with_its_arguments_before_anything_else(
    monkeypatch, glibc_linux
):
    monkeypatch.setattr(allocator.os, "execve", fake_execve)
    monkeypatch.setattr(sys, "argv", ["/usr/bin/tandem", "translate", "--model", "m"])
    with pytest.raises(Relaunched) as relaunched:
        cli.main()
    path, arguments, environment = relaunched.value.args
    assert path == sys.executable
    assert arguments == [sys.executable, "-m", "tandem", "translate", "--model", "m"]
    assert {k: environment[k] for k in KEEP_FREED_MEMORY} == KEEP_FREED_MEMORY
    assert environment["PATH"] == os.environ["PATH"]


def test_called_with_arguments_the_command_line_runs_in_process(monkeypatch, capsys, glibc_linux):
    monkeypatch.setattr(allocator.os, "execve", fake_execve)
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert "tandem" in capsys.readouterr().out


def test_a_program_that_cannot_be_rerun_runs_on_with_the_defaults(monkeypatch, glibc_linux):
    def failing_execve(path, arguments, environment):
        raise FileNotFoundError(path)

    monkeypatch.setattr(allocator.os, "execve", failing_execve)
    assert allocator.relaunch(["/no/such/python", "-m", "tandem"]) is None


def test_a_child_environment_gets_exactly_the_settings_asked_for():
    environ = {"PATH": "/bin", "MALLOC_ARENA_MAX": "4", "MALLOC_CHECK_": "3"}
    assert allocator.with_malloc_settings(environ, {}) == {"PATH": "/bin"}
    assert allocator.with_malloc_settings(environ, KEEP_FREED_MEMORY) == {
        "PATH": "/bin",
        **KEEP_FREED_MEMORY,
    }
