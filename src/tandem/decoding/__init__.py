"""Decoding strategies: they see only a step function, never a model's internals."""

from tandem.decoding.beam import beam_search
from tandem.decoding.compiled import compile_stateless
from tandem.decoding.greedy import greedy_search
from tandem.decoding.sampling import sample

__all__ = ["beam_search", "compile_stateless", "greedy_search", "sample"]
