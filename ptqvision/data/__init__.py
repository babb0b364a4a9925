"""Classification datasets, preprocessing, calibration sampling and data loaders."""
from .imagenet import (
    DEFAULT_PREPROCESS,
    IMAGE_EXTENSIONS,
    ClassificationDataset,
    build_loader,
    build_transform,
    sample_calibration,
)

__all__ = [
    "ClassificationDataset",
    "DEFAULT_PREPROCESS",
    "IMAGE_EXTENSIONS",
    "build_loader",
    "build_transform",
    "sample_calibration",
]
