"""Run a function that calls Keras layers as one compiled program (JAX) or eagerly (others)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras


def compile_stateless(fn: Callable, variables: Sequence) -> Callable:
    """Compile `fn(*arrays)`, passing the Keras variables' values as arguments.

    The weights are arguments, not constants baked into the program, so the compiled
    function stays valid when the weights change (validation decoding during training) and
    XLA does not have to fold megabytes of constants. Other backends run `fn` eagerly.

    Args:
        fn: a function of arrays that may call Keras layers owning `variables`.
        variables: every Keras variable `fn` reads.

    Returns:
        A function with the same arguments as `fn`.
    """
    if keras.backend.backend() != "jax":
        return fn
    import jax

    variables = list(variables)

    def pure(values, *args):
        with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
            return fn(*args)

    jitted = jax.jit(pure)

    def call(*args):
        return jitted([variable.value for variable in variables], *args)

    return call
