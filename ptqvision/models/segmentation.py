"""Builders of per-pixel classifiers for the semantic-segmentation task. Each returns a module whose forward gives
the logits (B, C, H, W) at the input's resolution as a plain tensor, so that torch.fx traces it, the CNN adapter
quantizes it, and the engine's tail and the evaluator see one tensor.

- ``torchvision_seg``: torchvision's FCN-ResNet50/101, DeepLabV3-ResNet50/101/MobileNetV3-Large and
  LRASPP-MobileNetV3-Large by ``model.name`` (torchvision returns a dict with 'out' and 'aux': the auxiliary
  head is never run);
- ``timm_seg``: a timm ``features_only`` backbone by ``model.name`` with a simple head (a 3x3 conv block and a
  1x1 classifier on the last feature map, or with ``model.kwargs.levels=2`` an FPN-lite fusion of the last two
  levels) and bilinear upsampling to the input size;
- ``seg_shapes_net``: the demo's small DeepLabV3+-like network (residual blocks, an ASPP-lite, a decoder with a
  low-level skip), trained by ``tools/make_seg_demo.py`` on generated shapes.

Random init (``model.weights='random'``) or a local checkpoint; preprocessing: ImageNet mean/std (the resize is
the task's, ``task.resize``).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import _compat  # noqa: F401  (must run before torchvision is imported)
from ..errors import ConfigError
from .registry import IMAGENET_MEAN, IMAGENET_STD, Preprocess, kwargs_from, load_state_dict, num_classes_from, register_model
from .torchvision_cnn import _name, _unknown

TORCHVISION_SEG = ("fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101",
                   "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large")
AUX_PREFIX = "aux_classifier."


def seg_preprocess(mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> Preprocess:
    """Return the model side of a segmentation protocol: mean / std on the 0..1 scale, bilinear resizing."""
    return {"interpolation": "bilinear", "mean": tuple(float(m) for m in mean), "std": tuple(float(s) for s in std)}


def upsample_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Return ``x`` resized (bilinear, align_corners False) to the spatial size of ``ref``."""
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


# ------------------------------------------------------------------------------------------- torchvision
class TorchvisionSegmentation(nn.Module):
    """A torchvision FCN / DeepLabV3 / LRASPP that returns its 'out' logits at the input size as a tensor.

    The submodules keep torchvision's names (``backbone``, ``classifier``, ``aux_classifier``), so torchvision's
    checkpoints load as they are. ``aux_classifier`` is only there when the checkpoint has one (so that it loads
    strictly); it is never run, and the quantized twin drops it.
    """

    def __init__(self, model: nn.Module, lraspp: bool) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.classifier = model.classifier
        aux = getattr(model, "aux_classifier", None)
        if aux is not None:
            self.aux_classifier = aux
        self.lraspp = lraspp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        # LRASPP's head reads the backbone's 'low' and 'high' maps; FCN / DeepLabV3 heads read 'out'
        out = self.classifier(features if self.lraspp else features["out"])
        return upsample_to(out, x)


def _checkpoint_has_aux(cfg: Mapping[str, Any]) -> bool:
    """Return whether ``model.weights`` is a checkpoint with torchvision's auxiliary head (the published FCN and
    DeepLabV3 files have one)."""
    weights = cfg.get("weights")
    if not isinstance(weights, str) or weights == "random":
        return False
    return any(k.startswith(AUX_PREFIX) for k in load_state_dict(weights))


@register_model("torchvision_seg")
def build_torchvision_seg(cfg: Mapping[str, Any]) -> tuple[nn.Module, Preprocess]:
    """Return (torchvision segmentation model ``cfg['name']`` with ``num_classes`` outputs, random init, wrapped to
    return its logits as a tensor; ImageNet mean/std)."""
    import torchvision

    name = _name(cfg, "torchvision_seg")
    if name not in TORCHVISION_SEG:
        raise _unknown("torchvision_seg", name, list(TORCHVISION_SEG))
    kwargs = kwargs_from(cfg)
    lraspp = name.startswith("lraspp")
    if not lraspp:
        kwargs.setdefault("aux_loss", _checkpoint_has_aux(cfg))
    try:
        model = torchvision.models.get_model(name, weights=None, weights_backbone=None,
                                             num_classes=num_classes_from(cfg), **kwargs)
    except TypeError as exc:
        raise ConfigError(f"model.kwargs not accepted by torchvision {name}: {exc}") from None
    return TorchvisionSegmentation(model, lraspp), seg_preprocess()


# -------------------------------------------------------------------------------------------------- timm
class ConvBNReLU(nn.Sequential):
    """Conv2d (no bias) → BatchNorm2d → ReLU."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, k, stride, dilation * (k // 2), dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SimpleHead(nn.Module):
    """A 3x3 conv block and a 1x1 classifier on the last feature map."""

    def __init__(self, channels: list[int], width: int, num_classes: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(channels[-1], width, 3)
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.conv(features[-1]))


class FPNLiteHead(nn.Module):
    """Two levels fused FPN-style: 1x1 blocks on both, the coarse one upsampled and added to the fine one, a 3x3
    conv block and a 1x1 classifier (at the finer level's resolution)."""

    def __init__(self, channels: list[int], width: int, num_classes: int) -> None:
        super().__init__()
        self.lateral = ConvBNReLU(channels[-2], width, 1)
        self.top = ConvBNReLU(channels[-1], width, 1)
        self.fuse = ConvBNReLU(width, width, 3)
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        fine = self.lateral(features[-2])
        return self.classifier(self.fuse(fine + upsample_to(self.top(features[-1]), fine)))


class TimmSegmentation(nn.Module):
    """A timm ``features_only`` backbone, a head on its last one or two levels, logits upsampled to the input."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_to(self.head(self.backbone(x)), x)


@register_model("timm_seg")
def build_timm_seg(cfg: Mapping[str, Any]) -> tuple[nn.Module, Preprocess]:
    """Return (timm backbone ``cfg['name']`` with a head, random init; the backbone's mean/std).

    ``model.kwargs``: ``levels`` (1: a simple head on the last level; 2: FPN-lite on the last two), ``head_width``
    (128), the rest goes to ``timm.create_model`` (e.g. ``output_stride=8``)."""
    import timm

    name = _name(cfg, "timm_seg")
    if not timm.is_model(name):
        raise _unknown("timm", name, timm.list_models())
    kwargs = kwargs_from(cfg)
    levels = kwargs.pop("levels", 1)
    width = kwargs.pop("head_width", 128)
    if levels not in (1, 2):
        raise ConfigError(f"model.kwargs.levels must be 1 or 2 for timm_seg, got {levels!r}")
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ConfigError(f"model.kwargs.head_width must be a positive integer, got {width!r}")
    try:
        backbone = timm.create_model(name, pretrained=False, features_only=True, **kwargs)
    except (TypeError, RuntimeError) as exc:
        raise ConfigError(f"timm {name} cannot be built as a features_only backbone with {kwargs}: "
                          f"{str(exc).splitlines()[0]}") from None
    channels = list(backbone.feature_info.channels())
    if len(channels) < levels:
        raise ConfigError(f"timm {name} has {len(channels)} feature level(s), model.kwargs.levels={levels}")
    head = (SimpleHead if levels == 1 else FPNLiteHead)(channels, width, num_classes_from(cfg))
    pcfg = dict(getattr(backbone, "pretrained_cfg", None) or {})
    return TimmSegmentation(backbone, head), seg_preprocess(pcfg.get("mean") or IMAGENET_MEAN,
                                                           pcfg.get("std") or IMAGENET_STD)


# -------------------------------------------------------------------------------------------------- demo
class BasicBlock(nn.Module):
    """ResNet's basic block (two 3x3 convs, a 1x1 projection when the shape changes), optionally dilated."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ImagePooling(nn.Module):
    """ASPP's image-level branch: global average pool, a 1x1 conv block, upsampled back to the map's size."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv2d(cin, cout, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_to(self.relu(self.conv(self.pool(x))), x)


class ASPPLite(nn.Module):
    """A small ASPP: a 1x1 branch, a dilated 3x3 branch and image pooling, concatenated and projected by 1x1."""

    def __init__(self, cin: int, cout: int, dilation: int = 2) -> None:
        super().__init__()
        self.branch1 = ConvBNReLU(cin, cout, 1)
        self.branch3 = ConvBNReLU(cin, cout, 3, dilation=dilation)
        self.pooling = ImagePooling(cin, cout)
        self.project = ConvBNReLU(3 * cout, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([self.branch1(x), self.branch3(x), self.pooling(x)], dim=1))


class ShapesSegNet(nn.Module):
    """The demo's per-pixel classifier (DeepLabV3+-like, about 0.25 M parameters at width 16): a stride-2 stem, four
    residual blocks (output stride 8, the last one dilated), an ASPP-lite, a decoder that fuses the upsampled ASPP
    output with a reduced stride-4 map, a 1x1 classifier and bilinear upsampling to the input size."""

    def __init__(self, num_classes: int = 7, width: int = 16) -> None:
        super().__init__()
        w = width
        self.stem = ConvBNReLU(3, w, 3, stride=2)
        self.layer1 = BasicBlock(w, w)
        self.layer2 = BasicBlock(w, 2 * w, stride=2)
        self.layer3 = BasicBlock(2 * w, 4 * w, stride=2)
        self.layer4 = BasicBlock(4 * w, 4 * w, dilation=2)
        self.aspp = ASPPLite(4 * w, 4 * w)
        self.reduce = ConvBNReLU(2 * w, w, 1)
        self.fuse = ConvBNReLU(5 * w, 3 * w, 3)
        self.classifier = nn.Conv2d(3 * w, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.layer2(self.layer1(self.stem(x)))
        high = self.aspp(self.layer4(self.layer3(low)))
        y = self.fuse(torch.cat([upsample_to(high, low), self.reduce(low)], dim=1))
        return upsample_to(self.classifier(y), x)


@register_model("seg_shapes_net")
def build_seg_shapes_net(cfg: Mapping[str, Any]) -> tuple[nn.Module, Preprocess]:
    """Return (the demo's ShapesSegNet with ``num_classes`` outputs and ``model.kwargs.width`` (16), random init;
    ImageNet mean/std)."""
    kwargs = kwargs_from(cfg)
    width = kwargs.pop("width", 16)
    if kwargs:
        raise ConfigError(f"model.type 'seg_shapes_net' takes only model.kwargs.width, got {', '.join(kwargs)}")
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ConfigError(f"model.kwargs.width must be a positive integer, got {width!r}")
    return ShapesSegNet(num_classes_from(cfg), width), seg_preprocess()


__all__ = ["TORCHVISION_SEG", "ShapesSegNet", "TimmSegmentation", "TorchvisionSegmentation", "build_seg_shapes_net",
           "build_timm_seg", "build_torchvision_seg", "seg_preprocess", "upsample_to"]
