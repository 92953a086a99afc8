"""tandem's version, a module of its own so that the modules under the package can read it."""

__version__ = "0.1.0"  # as pyproject.toml's
