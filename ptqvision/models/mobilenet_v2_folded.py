"""MobileNetV2 with BatchNorm folded into the convs and ReLU instead of ReLU6 ('mobilenet_v2_folded').

This is the layout of torchvision's quantizable MobileNetV2 after conv-BN fusion, which is what
``shared/data/mobilenet_v2_int8_pytorch_demo/mobilenet_v2_bnfolded_float_from_int8.pt`` stores.
Module paths are torchvision's, so its ``features.N...`` / ``classifier.1`` keys load strictly.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from .. import _compat  # noqa: F401  (must run before torchvision is imported)
from .registry import Preprocess, imagenet_preprocess, kwargs_from, num_classes_from, register_model


def _fold_bn_layout(module: nn.Module) -> None:
    """Replace, in place, every Conv2d+BatchNorm2d pair by a biased Conv2d + Identity, and ReLU6 by ReLU."""
    children = list(module.named_children())
    for i, (name, child) in enumerate(children):
        if isinstance(child, nn.BatchNorm2d):
            prev_name, prev = children[i - 1] if i > 0 else (None, None)
            if not isinstance(prev, nn.Conv2d):
                raise AssertionError(f"BatchNorm {name} does not follow a Conv2d")
            conv = nn.Conv2d(prev.in_channels, prev.out_channels, prev.kernel_size, prev.stride,
                             prev.padding, prev.dilation, prev.groups, bias=True)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out")  # torchvision's init for its convs
            nn.init.zeros_(conv.bias)
            setattr(module, prev_name, conv)
            setattr(module, name, nn.Identity())
        elif isinstance(child, nn.ReLU6):
            # Not in place: hooks that keep a conv's output must not see it rectified afterwards.
            setattr(module, name, nn.ReLU(inplace=False))
        else:
            _fold_bn_layout(child)


def mobilenet_v2_folded(num_classes: int = 1000) -> nn.Module:
    """Return a randomly initialised BN-folded, ReLU MobileNetV2 (torchvision module paths)."""
    import torchvision

    model = torchvision.models.mobilenet_v2(weights=None, num_classes=num_classes)
    _fold_bn_layout(model)
    return model


@register_model("mobilenet_v2_folded")
def build_mobilenet_v2_folded(cfg: Mapping[str, Any]) -> tuple[nn.Module, Preprocess]:
    """Return (BN-folded MobileNetV2, resize 256 / crop 224 ImageNet mean/std preprocessing)."""
    kwargs_from(cfg, accepts_kwargs=False)
    return mobilenet_v2_folded(num_classes_from(cfg)), imagenet_preprocess()
