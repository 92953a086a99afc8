"""The process's memory allocator: keep freed memory in the process instead of handing it back.

A compiled training step allocates and frees the same large buffers every step. glibc's malloc
gives buffers above its mmap threshold (and emptied per-thread heaps) back to the kernel when
they are freed, so every step faults their pages in again: about 42,000 minor page faults and
150 ms of system CPU time per step of the seed model at batch 256 (`make bench-train-profile`).
With one arena, no memory maps and no trimming, glibc keeps freed memory for the next step:
no page faults, system CPU time 7 ms a step, the step about a fifth faster there (whole epochs
gain less, within the noise of shared cores). The cost: the process does not shrink after its
peak, and peaks higher (docs/benchmarks.md).

glibc reads these settings when the process starts, so the command line re-runs itself with
them (`relaunch`) before it does anything else. `TANDEM_KEEP_FREED_MEMORY=0` turns this off;
any MALLOC_ setting already in the environment is left as it is (the user's choice wins).
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping, Sequence

KEEP_FREED_MEMORY = {
    "MALLOC_ARENA_MAX": "1",  # one heap for all threads, grown with brk and kept
    "MALLOC_MMAP_MAX_": "0",  # no buffer gets its own memory map (unmapped when freed)
    "MALLOC_TRIM_THRESHOLD_": str(16 * 2**30),  # never give the heap's top back
    "MALLOC_TOP_PAD_": str(256 * 2**20),  # grow the heap in large steps
}
OPT_OUT = "TANDEM_KEEP_FREED_MEMORY"


def malloc_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The glibc malloc settings (MALLOC_ variables) in an environment."""
    return {name: value for name, value in environ.items() if name.startswith("MALLOC_")}


def with_malloc_settings(environ: Mapping[str, str], settings: Mapping[str, str]) -> dict[str, str]:
    """The environment with its MALLOC_ variables replaced by `settings` (none: glibc's defaults)."""
    return {**{k: v for k, v in environ.items() if k not in malloc_settings(environ)}, **settings}


def relaunch_environment(environ: Mapping[str, str], libc: str) -> dict[str, str] | None:
    """The environment to re-run the process under, or None when it should run as it is.

    Args:
        environ: the current environment.
        libc: the C library's name (`platform.libc_ver()[0]`); the settings are glibc's.
    """
    if libc != "glibc" or environ.get(OPT_OUT, "1") == "0":
        return None
    if malloc_settings(environ):
        return None  # already relaunched, or the user chose the allocator's settings
    return with_malloc_settings(environ, KEEP_FREED_MEMORY)


def relaunch(command: Sequence[str]) -> None:
    """Replace this process by `command` (the same program) under `KEEP_FREED_MEMORY`, if needed.

    Call it first thing: the new process starts from scratch, with the same process id and
    the same standard streams. Returns (doing nothing) when no relaunch is needed, the platform
    has no glibc, or the program cannot be re-run.

    Args:
        command: the program and its arguments, `[sys.executable, "-m", "tandem", ...]`.
    """
    libc = platform.libc_ver()[0] if sys.platform.startswith("linux") else ""
    environment = relaunch_environment(os.environ, libc)
    if environment is None:
        return
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:  # None: started with the stream closed
            stream.flush()
    try:
        os.execve(command[0], list(command), environment)
    except OSError:
        return  # cannot re-run (no such interpreter, say): run on with the defaults
