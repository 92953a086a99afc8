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


class CheckpointError(TandemError):
    """A training checkpoint that cannot be read."""


class OverlongSourceError(TandemError):
    """A source longer than any the model saw in training, with `overlong="error"`.

    Args:
        number: its 1-based position among the texts translated (a file's line number when
            the texts are a file's lines).
        message: what is wrong, without the position.
    """

    def __init__(self, number: int, message: str):
        self.number = number
        self.message = message
        super().__init__(f"text {number}: {message}")


class OverlongSourceWarning(UserWarning):
    """A source longer than any the model saw in training was truncated (`overlong="truncate"`).

    Args:
        message: what happened.
        number: when it is about one text, that text's 1-based position among the texts
            translated (as in `OverlongSourceError`); the warning then reads "text N: ...".
    """

    def __init__(self, message: str, number: int | None = None):
        self.number = number
        self.detail = message
        super().__init__(message if number is None else f"text {number}: {message}")
