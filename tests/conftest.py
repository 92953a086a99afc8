"""Shared fixtures (small parallel files, one tiny trained model directory per session) and helpers."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
# Many tests build the same small programs in fresh models (and in subprocesses, which inherit
# the environment): JAX's persistent compilation cache, in a fresh directory per session,
# compiles each program once. Before JAX is imported, so this process reads it too.
_JAX_CACHE = tempfile.mkdtemp(prefix="tandem-tests-jax-cache-")
atexit.register(shutil.rmtree, _JAX_CACHE, ignore_errors=True)
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _JAX_CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

import keras  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
# What the test run keeps for a reader (screenshots of the pages tandem writes); git-ignored.
ARTIFACTS = REPO / "test-artifacts"

TINY_PAIRS = [
    ("Go.", "Va !"),
    ("Hi.", "Salut !"),
    ("Run!", "Cours !"),
    ("Wow!", "Ça alors !"),
    ("Fire!", "Au feu !"),
    ("Help!", "À l'aide !"),
    ("Jump.", "Saute."),
    ("Stop!", "Ça suffit !"),
    ("Wait!", "Attends !"),
    ("Go on.", "Poursuis."),
    ("Hello!", "Bonjour !"),
    ("I see.", "Je comprends."),
]


class StopAt(keras.callbacks.Callback):
    """Ctrl-C at the start of an epoch (0-based)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.at_epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt


def write_tsv(path: Path, pairs) -> Path:
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_tsv(tmp_path_factory) -> Path:
    return write_tsv(tmp_path_factory.mktemp("data") / "tiny.tsv", TINY_PAIRS)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tsv) -> Path:
    """A seed model trained for a few epochs on TINY_PAIRS (quality is not the point)."""
    from tandem.config import Config
    from tandem.training import train

    config = Config().replace("model", latent_dim=16)
    config = config.replace("train", epochs=3, batch_size=4, validation_split=0.25)
    output = tmp_path_factory.mktemp("models") / "tiny"
    train(TINY_PAIRS, config, output, verbose=0)
    return output


@pytest.fixture(scope="session")
def tiny_attention_dir(tmp_path_factory) -> Path:
    """A GRU with dot attention and input feeding, trained a few epochs on TINY_PAIRS."""
    from tandem.config import Config
    from tandem.training import train

    config = Config().replace(
        "model", cell="gru", attention="dot", input_feeding=True, latent_dim=8, embedding_dim=8
    )
    config = config.replace("train", epochs=3, batch_size=4, validation_split=0.0)
    output = tmp_path_factory.mktemp("models") / "attention"
    train(TINY_PAIRS, config, output, verbose=0)
    return output


@pytest.fixture(scope="session")
def tiny_transformer_dir(tmp_path_factory, tiny_tsv) -> Path:
    """A small Transformer trained for a few epochs on TINY_PAIRS, with its warm-up schedule."""
    from tandem.config import Config
    from tandem.training import train

    config = Config().replace(
        "model",
        family="transformer",
        latent_dim=16,
        embedding_dim=16,
        heads=2,
        ff_dim=32,
        num_layers=2,
        dropout=0.1,
    )
    config = config.replace(
        "train",
        epochs=3,
        batch_size=4,
        validation_split=0.25,
        optimizer="adam",
        lr_schedule="inverse_sqrt",
        learning_rate=0.01,
        warmup_steps=4,
    )
    output = tmp_path_factory.mktemp("models") / "tiny_transformer"
    train(TINY_PAIRS, config, output, verbose=0)
    return output


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data sets not present at {SHARED_DATA}")
    return SHARED_DATA


def skip_unless_installed(*packages: str) -> None:
    """Skip the calling test, naming the Debian packages (e.g. "graphviz") that are missing."""
    from browser import missing_packages

    missing = missing_packages(*packages)
    if missing:
        names = ", ".join(missing)
        pytest.skip(f"Debian package(s) {names} not installed (`make system-deps` installs them)")


@pytest.fixture(scope="session")
def browser():
    """Headless system Chromium under Selenium, shared by the session; see tests/browser.py."""
    from browser import headless_chromium

    skip_unless_installed("chromium", "chromium-driver")
    with headless_chromium() as driver:
        yield driver


@pytest.fixture(scope="session")
def graphviz_dot() -> Path:
    """The path of Graphviz's `dot`; skips, naming the package, where it is not installed."""
    skip_unless_installed("graphviz")
    return Path(shutil.which("dot"))


@pytest.fixture
def screenshot_path(request) -> Path:
    """test-artifacts/<test name>.png, kept after the run (the folder is created on write)."""
    return ARTIFACTS / (re.sub(r"[^\w.-]+", "_", request.node.name) + ".png")


def free_port() -> int:
    """A TCP port free on the loopback address now, for a server a test starts there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
