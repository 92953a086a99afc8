"""Loading weights without compiling: a model being loaded skips its initializers."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import keras
import numpy as np

# The patch below is process-wide: one load at a time sets and restores it.
_LOCK = threading.RLock()


@contextlib.contextmanager
def weights_to_load() -> Iterator[None]:
    """Within this context, the weights Keras layers make start as zeros, not as draws of
    their initializers, and values assigned from host arrays are copied to the device as they
    are; for models whose every weight is loaded right after.

    On the JAX backend each initializer is a program compiled for its shape (the recurrent
    kernels' orthogonal one runs a QR decomposition), and so is turning a host array into a
    device one (`jnp.asarray`): drawing a model's initial weights, only for `model.keras`'s
    to replace them, took 28 of the 30 s of a `Translator.from_dir` with an empty compilation
    cache. Variables that are not floats (a dropout's seed state), or of a float type numpy
    lacks (bfloat16), are made as usual.
    """
    variable_class = keras.Variable
    own = {name: variable_class.__dict__.get(name) for name in _PATCHED}
    usual_initialize = variable_class._initialize_with_initializer
    usual_convert = variable_class._convert_to_tensor

    def zeros(variable, initializer):
        dtype = _numpy_dtype(variable.dtype)
        if dtype is None or dtype.kind != "f":  # a dropout's seed state: made as usual
            return usual_initialize(variable, initializer)
        variable._initialize(variable._convert_to_tensor(np.zeros(variable.shape, dtype)))

    def convert(variable, value, dtype=None):
        if keras.backend.backend() == "jax" and isinstance(value, np.ndarray):
            import jax

            wanted = _numpy_dtype(dtype or value.dtype)
            if wanted is not None:
                return jax.device_put(np.asarray(value, dtype=wanted))  # nothing compiled
        return usual_convert(variable, value, dtype=dtype)

    with _LOCK:
        variable_class._initialize_with_initializer = zeros
        variable_class._convert_to_tensor = convert
        try:
            yield
        finally:
            for name, method in own.items():
                if method is None:
                    delattr(variable_class, name)
                else:
                    setattr(variable_class, name, method)


_PATCHED = ("_initialize_with_initializer", "_convert_to_tensor")


def _numpy_dtype(dtype) -> np.dtype | None:
    """`dtype` as numpy's, or None for one numpy lacks (bfloat16)."""
    try:
        return np.dtype(keras.backend.standardize_dtype(dtype))
    except TypeError:
        return None
