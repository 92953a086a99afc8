"""Decoding strategies: they see only a step function, never a model's internals."""

from tandem.decoding.compiled import compile_stateless
from tandem.decoding.greedy import greedy_search

__all__ = ["compile_stateless", "greedy_search"]
