"""Evaluation: classification accuracy and COCO instance-segmentation mAP."""
from .classification import ClassificationEvaluator, topk_correct
from .coco import SEGM_METRICS, CocoInstanceEvaluator, EvalImage, encode_masks

__all__ = ["ClassificationEvaluator", "topk_correct", "CocoInstanceEvaluator", "EvalImage", "SEGM_METRICS",
           "encode_masks"]
