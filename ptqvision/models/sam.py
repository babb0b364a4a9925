"""Segment Anything (segment-anything's own classes) as ptqvision runs it: one image and its box prompts in,
one mask per box and its predicted IoU out.

Builders (``model.type='sam'``, ``model.name``): ``sam_vit_b``, ``sam_vit_l``, ``sam_vit_h`` (the official
architectures at 1024×1024; load the official checkpoint, e.g. ``sam_vit_b_01ec64.pth``, as
``model.weights``) and ``sam_tiny``, a small SAM made of the same classes (ImageEncoderViT with windowed
and global attention and decomposed relative positions, PromptEncoder, MaskDecoder with a TwoWayTransformer)
for the project's demo and tests. ``model.kwargs`` overrides any architecture field of :class:`SamArch`.

:class:`SamBoxModel` keeps segment-anything's module names (``image_encoder``, ``prompt_encoder``,
``mask_decoder``), so official checkpoints load strictly. Its forward takes the image already resized
(longest side = ``image_size``), normalised and zero-padded to a square, and boxes (x0, y0, x1, y1) in that
resized frame, and returns the low-resolution mask logits of the single-mask output
(``multimask_output=False``, mask slot 0) and SAM's predicted IoU of each.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import Any, Mapping

import torch
from torch import nn

from .. import _compat  # noqa: F401  (segment-anything imports torchvision)
from ..errors import ConfigError
from .registry import IMAGENET_MEAN, IMAGENET_STD, Preprocess, kwargs_from, register_model


@dataclass(frozen=True)
class SamArch:
    """Every architecture field of a SAM (segment-anything's ``_build_sam`` has the same ones)."""

    image_size: int = 1024
    patch_size: int = 16
    encoder_embed_dim: int = 768
    encoder_depth: int = 12
    encoder_num_heads: int = 12
    encoder_global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    window_size: int = 14
    mlp_ratio: float = 4.0
    prompt_embed_dim: int = 256
    decoder_depth: int = 2
    decoder_num_heads: int = 8
    decoder_mlp_dim: int = 2048
    iou_head_hidden_dim: int = 256
    mask_in_chans: int = 16
    num_multimask_outputs: int = 3


SAM_ARCHS: dict[str, SamArch] = {
    "sam_vit_b": SamArch(),
    "sam_vit_l": SamArch(encoder_embed_dim=1024, encoder_depth=24, encoder_num_heads=16,
                         encoder_global_attn_indexes=(5, 11, 17, 23)),
    "sam_vit_h": SamArch(encoder_embed_dim=1280, encoder_depth=32, encoder_num_heads=16,
                         encoder_global_attn_indexes=(7, 15, 23, 31)),
    # The demo's small SAM: 256×256 input (16×16 tokens, windows of 8: 4 windowed and 2 global blocks), a
    # 64-dim prompt space and the same two-way decoder, about 0.8 M parameters.
    "sam_tiny": SamArch(image_size=256, encoder_embed_dim=96, encoder_depth=4, encoder_num_heads=3,
                        encoder_global_attn_indexes=(1, 3), window_size=8, prompt_embed_dim=64,
                        decoder_num_heads=4, decoder_mlp_dim=256, iou_head_hidden_dim=64, mask_in_chans=16),
}


def sam_arch(name: str, overrides: Mapping[str, Any] | None = None) -> SamArch:
    """Return the architecture of ``name`` with ``overrides`` (``model.kwargs``) applied; ConfigError on a bad field."""
    if name not in SAM_ARCHS:
        raise ConfigError(f"unknown SAM model.name {name!r}; choose one of {', '.join(SAM_ARCHS)}")
    overrides = dict(overrides or {})
    fields = {f.name for f in dataclasses.fields(SamArch)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"unknown SAM architecture field(s) in model.kwargs: {unknown}; valid: {sorted(fields)}")
    if "encoder_global_attn_indexes" in overrides:
        overrides["encoder_global_attn_indexes"] = tuple(overrides["encoder_global_attn_indexes"])
    arch = dataclasses.replace(SAM_ARCHS[name], **overrides)
    if arch.image_size % arch.patch_size:
        raise ConfigError(f"SAM image_size {arch.image_size} is not a multiple of patch_size {arch.patch_size}")
    return arch


def build_sam(arch: SamArch) -> nn.Module:
    """Return a randomly initialised segment-anything ``Sam`` of ``arch`` (the classes of ``_build_sam``)."""
    try:
        from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
    except ImportError as exc:  # pragma: no cover - the CPU setup installs it
        raise ConfigError("SAM models need the segment-anything package (pip install segment-anything)") from exc
    grid = arch.image_size // arch.patch_size
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=arch.encoder_depth, embed_dim=arch.encoder_embed_dim, img_size=arch.image_size,
            mlp_ratio=arch.mlp_ratio, norm_layer=partial(nn.LayerNorm, eps=1e-6), num_heads=arch.encoder_num_heads,
            patch_size=arch.patch_size, qkv_bias=True, use_rel_pos=True,
            global_attn_indexes=arch.encoder_global_attn_indexes, window_size=arch.window_size,
            out_chans=arch.prompt_embed_dim),
        prompt_encoder=PromptEncoder(embed_dim=arch.prompt_embed_dim, image_embedding_size=(grid, grid),
                                     input_image_size=(arch.image_size, arch.image_size),
                                     mask_in_chans=arch.mask_in_chans),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=arch.num_multimask_outputs,
            transformer=TwoWayTransformer(depth=arch.decoder_depth, embedding_dim=arch.prompt_embed_dim,
                                          mlp_dim=arch.decoder_mlp_dim, num_heads=arch.decoder_num_heads),
            transformer_dim=arch.prompt_embed_dim, iou_head_depth=3, iou_head_hidden_dim=arch.iou_head_hidden_dim),
        pixel_mean=[255 * m for m in IMAGENET_MEAN], pixel_std=[255 * s for s in IMAGENET_STD],
    ).eval()


def prompt_embeddings(prompt_encoder: nn.Module, prompts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return segment-anything's (sparse, dense) prompt embeddings of ``prompts``: (P, 4) boxes x0 y0 x1 y1, or
    (P, 2) points x y, one foreground point per prompt (label 1), in the model's input frame."""
    if prompts.dim() != 2 or prompts.shape[-1] not in (2, 4):
        raise ValueError(f"prompts must be boxes (P, 4) or points (P, 2), got {tuple(prompts.shape)}")
    if prompts.shape[-1] == 4:
        return prompt_encoder(points=None, boxes=prompts, masks=None)
    labels = torch.ones(prompts.shape[0], 1, dtype=torch.int64, device=prompts.device)
    return prompt_encoder(points=(prompts[:, None, :], labels), boxes=None, masks=None)


class SamBoxModel(nn.Module):
    """SAM with box (or point) prompts: ``forward(image, prompts) -> (mask logits (P, 1, h, w), predicted IoU
    (P, 1))``.

    ``image``: (1, 3, S, S), resized so that its longest side is S = ``image_size``, normalised with
    ``mean``/``std`` and zero-padded at the bottom and right; ``prompts``: (P, 4) float boxes x0 y0 x1 y1 in
    that frame, or (P, 2) single foreground points. One image per call: the prompts of one image are SAM's batch.
    """

    def __init__(self, sam: nn.Module, arch: SamArch) -> None:
        super().__init__()
        self.image_encoder = sam.image_encoder
        self.prompt_encoder = sam.prompt_encoder
        self.mask_decoder = sam.mask_decoder
        self.arch = arch

    @property
    def image_size(self) -> int:
        return self.arch.image_size

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Return the image embedding (1, C, h, w) of one preprocessed image (1, 3, S, S)."""
        if image.dim() != 4 or image.shape[0] != 1:
            raise ValueError(f"SamBoxModel takes one image (1, 3, S, S), got {tuple(image.shape)}")
        return self.image_encoder(image)

    def decode(self, embedding: torch.Tensor, prompts: torch.Tensor,
               multimask_output: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (mask logits (P, k, h, w), predicted IoU (P, k)) for the prompts of one image embedding (k = 1,
        or 3 with ``multimask_output``); the prompts may be given in chunks (the image is encoded once)."""
        sparse, dense = prompt_embeddings(self.prompt_encoder, prompts)
        return self.mask_decoder(image_embeddings=embedding, image_pe=self.prompt_encoder.get_dense_pe(),
                                 sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                 multimask_output=multimask_output)

    def forward(self, image: torch.Tensor, prompts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decode(self.encode(image), prompts)


class SamPredictorView:
    """A :class:`SamBoxModel` (full precision or quantized) seen as segment-anything's ``Sam`` by its
    ``SamPredictor`` and ``SamAutomaticMaskGenerator``: the same encoder, prompt encoder and decoder, with
    ``Sam``'s preprocessing (normalise on the 0..255 scale, pad to a square) and mask post-processing."""

    image_format = "RGB"
    mask_threshold = 0.0

    def __init__(self, model: SamBoxModel) -> None:
        self.model = model
        self.image_encoder, self.prompt_encoder = model.image_encoder, model.prompt_encoder
        self.mask_decoder = model.mask_decoder
        first = next(model.parameters())
        self.pixel_mean = torch.tensor([255 * m for m in IMAGENET_MEAN], device=first.device).view(-1, 1, 1)
        self.pixel_std = torch.tensor([255 * s for s in IMAGENET_STD], device=first.device).view(-1, 1, 1)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        from segment_anything.modeling import Sam

        return Sam.preprocess(self, x)

    def postprocess_masks(self, masks: torch.Tensor, input_size: tuple[int, ...],
                          original_size: tuple[int, ...]) -> torch.Tensor:
        from segment_anything.modeling import Sam

        return Sam.postprocess_masks(self, masks, input_size, original_size)


def sam_preprocess(arch: SamArch) -> Preprocess:
    """Return SAM's preprocessing: resize the longest side to S (bilinear, as segment-anything's
    ResizeLongestSide on a PIL image), normalise on the 0..1 scale with ImageNet mean/std (SAM's
    pixel_mean/std ÷ 255), zero-pad to S×S; masks are thresholded at 0 (``Sam.mask_threshold``)."""
    return {"longest_side": arch.image_size, "pad_to": arch.image_size, "interpolation": "bilinear",
            "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "mask_threshold": 0.0}


@register_model("sam")
def build_sam_box_model(cfg: Mapping[str, Any]) -> tuple[nn.Module, Preprocess]:
    """Return (SamBoxModel, preprocessing) for ``model.name`` in ``SAM_ARCHS`` with ``model.kwargs`` applied."""
    name = cfg.get("name") or "sam_vit_b"
    arch = sam_arch(name, kwargs_from(cfg))
    return SamBoxModel(build_sam(arch), arch), sam_preprocess(arch)
