"""Metrics (sacreBLEU chrF and BLEU, exact match) and evaluation reports."""

from tandem.evaluation.metrics import error_rates, score
from tandem.evaluation.report import evaluate

__all__ = ["error_rates", "evaluate", "score"]
