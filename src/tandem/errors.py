"""Errors a user can fix: reported as one line, exit code 2, never a traceback."""

from __future__ import annotations


class TandemError(Exception):
    """A user mistake (bad file, bad option, bad model directory)."""

    exit_code = 2


class DataError(TandemError):
    """Bad input data, located by file and (when known) line number.

    Args:
        path: the file that holds the problem.
        message: what is wrong.
        line: 1-based line number, or None when the problem is the whole file.
    """

    def __init__(self, path, message: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class ModelDirError(TandemError):
    """A model directory that is missing a file or holds a malformed one."""
