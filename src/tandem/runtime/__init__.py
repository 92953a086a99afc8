"""Decoding exported graphs with numpy and onnxruntime: no Keras, no JAX (see docs/export.md)."""

from tandem.runtime.translator import OnnxTranslator

__all__ = ["OnnxTranslator"]
