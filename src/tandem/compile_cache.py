"""JAX's persistent compilation cache for the command line: compile a program once, on disk.

Every new shape of a batch (length buckets, the last batch, validation, each decoder) is a
program that XLA compiles, and in short runs compiling takes longer than computing: on two CPU
cores, two epochs on 2,000 pairs took 39 s without the cache and 16 s when a first run had left
its programs on disk, and a beam-5 `translate` 6.8 s against 3.8 s (`make bench-compile-cache`).
Reruns, `--resume`, sweeps that keep the model's sizes and every `tandem translate` of the same
model read them back instead.

`tandem` (and the demo) keep the programs in `$XDG_CACHE_HOME/tandem/jax` (default
`~/.cache/tandem/jax`), dropping the least recently used beyond 1 GiB. `TANDEM_COMPILE_CACHE`
names another directory, or `off`; `JAX_COMPILATION_CACHE_DIR`, JAX's own setting, wins over
both. The cache's key holds the program, the compiler options, the JAX version and the device:
a different machine or JAX version compiles anew. Python API callers opt in with `enable()`.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

VARIABLE = "TANDEM_COMPILE_CACHE"
MAX_BYTES = 2**30  # beyond this, the least recently used programs are dropped


def cache_dir(environ: Mapping[str, str]) -> Path | None:
    """Where tandem keeps compiled programs under `environ`; None when it is turned off."""
    chosen = environ.get(VARIABLE, "").strip()
    if chosen.lower() == "off":
        return None
    if chosen:
        return Path(chosen).expanduser()
    base = environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tandem" / "jax"


def enable(environ: Mapping[str, str] = os.environ) -> Path | None:
    """Point JAX's persistent compilation cache at `cache_dir(environ)`, before anything is
    compiled. Does nothing off the JAX backend or when JAX_COMPILATION_CACHE_DIR is set (JAX
    reads that itself); a directory that cannot be made is a warning, and nothing is cached.

    Returns:
        The directory programs are cached in, or None.
    """
    if environ.get("KERAS_BACKEND", "jax") != "jax":
        return None
    if environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(environ["JAX_COMPILATION_CACHE_DIR"])
    directory = cache_dir(environ)
    if directory is None:
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if not os.access(directory, os.W_OK | os.X_OK):
            raise PermissionError(13, "not writable")
    except OSError as exc:
        warnings.warn(
            f"compiled programs are not cached: cannot write to {directory} "
            f"({exc.strerror or exc}); set {VARIABLE} to another directory, or to off",
            stacklevel=2,
        )
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # every program
    if importlib.util.find_spec("filelock") is not None:  # JAX's eviction locks with it
        jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return directory
