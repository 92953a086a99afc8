"""tandem: sequence-to-sequence learning in Keras 3."""

import os

# Keras reads its backend once, at import: choose JAX unless the user already chose.
os.environ.setdefault("KERAS_BACKEND", "jax")

from tandem.errors import TandemError  # noqa: E402
from tandem.version import __version__  # noqa: E402

__all__ = ["TandemError", "Translator", "__version__"]


def __getattr__(name):
    # Importing the facade pulls in Keras: do it only when asked for.
    if name == "Translator":
        from tandem.translator import Translator

        return Translator
    raise AttributeError(f"module 'tandem' has no attribute {name!r}")
