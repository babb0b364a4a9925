"""Tasks: data, the model's forward on it, the prediction difference's distance and the evaluator."""
from ..registry import TASKS, lookup
from .base import Task
from .classification import ClassificationTask, build_dataset, check_labels
from .instance_segmentation import CocoInstanceTask  # noqa: F401  (registers coco_instance)
from .semantic_segmentation import SemanticSegmentationTask  # noqa: F401  (registers semantic_segmentation)
from .sam_semantic import SamSemanticTask  # noqa: F401  (registers sam_semantic)


def build_task(cfg: dict, preprocess: dict) -> Task:
    """Return the task named by ``task.type``, built from the resolved config."""
    return lookup(TASKS, cfg["task"]["type"], "task.type")(cfg, preprocess)


__all__ = ["Task", "ClassificationTask", "build_task", "build_dataset", "check_labels"]
