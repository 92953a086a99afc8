"""Keras layers and the three graphs: training model, encoder model, decoder step model."""

from tandem.models.seq2seq import ModelDims, Seq2Seq
from tandem.models.transformer import Transformer

__all__ = ["ModelDims", "Seq2Seq", "Transformer"]
