"""Exporting a model's encoder and decoder-step graphs to ONNX (the `export` extra)."""

from tandem.export.writer import ExportError, export_model

__all__ = ["ExportError", "export_model"]
