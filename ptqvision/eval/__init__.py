"""Accuracy evaluation of classification models."""
from .classification import ClassificationEvaluator, topk_correct

__all__ = ["ClassificationEvaluator", "topk_correct"]
