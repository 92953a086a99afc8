"""Metrics (sacreBLEU chrF and BLEU, exact match) and evaluation reports."""

from tandem.evaluation.metrics import score
from tandem.evaluation.report import evaluate

__all__ = ["evaluate", "score"]
