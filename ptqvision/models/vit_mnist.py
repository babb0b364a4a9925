"""ViT4MNIST as a standard timm VisionTransformer: a small real transformer for demos and tests.

The source network is the TorchScript ``ViT`` of GitHub ``pytorch/ios-demo-app`` (``ViT4MNIST``,
built with the ``vit_pytorch`` package, Linear layers dynamically int8-quantized). Its traced
code, read from the file, is (every constant checked):

- input 1x1x28x28 normalised with mean 0.1307, std 0.3081 (0..1 pixel scale);
- patches 7x7 -> 4x4 = 16 patches, flattened in ``(p1 p2 c)`` order, ``patch_to_embedding``
  Linear(49 -> 64, bias);
- a class token (1x1x64) concatenated *before* the patches, then a learned position embedding
  (1x17x64) added to all 17 tokens (timm's default ``no_embed_class=False``);
- 6 layers of ``x = x + Attention(LayerNorm(x))`` and ``x = x + FeedForward(LayerNorm(x))``,
  LayerNorm eps 1e-5 (the default of ``F.layer_norm``; timm's default is 1e-6);
- Attention: ``to_qkv`` Linear(64 -> 192) **without bias**, 8 heads of dim 8, qkv split as
  ``(3, heads, head_dim)`` (the same layout as timm), ``dots = q.k * 0.125``; 0.125 = 64**-0.5
  (model dim), not head_dim**-0.5 = 0.3536; softmax; ``to_out`` Linear(64 -> 64, bias);
- FeedForward: Linear(64 -> 128) -> exact (erf) GELU -> Linear(128 -> 64): mlp_ratio 2;
- no final LayerNorm; the class token (token 0) goes to ``mlp_head``:
  Linear(64 -> 128) -> exact GELU -> Linear(128 -> 10).

:func:`build_vit_mnist_tiny` builds the equivalent timm model; :func:`convert_torchscript` turns the
TorchScript into its float state dict (int8 weights dequantized; the attention-scale difference is
folded into the q rows of each ``qkv`` weight, so timm's head_dim**-0.5 scaling gives 0.125 overall).
"""
from __future__ import annotations

from typing import Any, Mapping

import math
from functools import partial

import torch
from torch import nn

from .. import _compat  # noqa: F401  (must run before timm / torchvision are imported)
from ..errors import CheckpointError

MNIST_PREPROCESS = {"mean": (0.1307,), "std": (0.3081,)}
"""Input normalisation of ViT4MNIST, on the 0..1 pixel scale (``(pixel / 255 - mean) / std``)."""

IMG_SIZE = 28
PATCH_SIZE = 7
IN_CHANS = 1
NUM_CLASSES = 10
EMBED_DIM = 64
DEPTH = 6
NUM_HEADS = 8
MLP_DIM = 128  # FeedForward hidden width (mlp_ratio 2)
HEAD_DIM_HIDDEN = 128  # mlp_head hidden width
LN_EPS = 1e-5
ORIGINAL_ATTN_SCALE = EMBED_DIM ** -0.5  # 0.125, the constant in the TorchScript
TIMM_ATTN_SCALE = (EMBED_DIM // NUM_HEADS) ** -0.5  # what timm's Attention applies

from .registry import kwargs_from, register_model


def build_vit_mnist_tiny() -> nn.Module:
    """Return a randomly initialised timm VisionTransformer with the ViT4MNIST architecture."""
    from timm.models.vision_transformer import VisionTransformer

    model = VisionTransformer(
        img_size=IMG_SIZE,
        patch_size=PATCH_SIZE,
        in_chans=IN_CHANS,
        num_classes=NUM_CLASSES,
        global_pool="token",
        embed_dim=EMBED_DIM,
        depth=DEPTH,
        num_heads=NUM_HEADS,
        mlp_ratio=MLP_DIM / EMBED_DIM,
        qkv_bias=False,
        class_token=True,
        no_embed_class=False,
        pre_norm=False,
        final_norm=False,
        fc_norm=False,
        norm_layer=partial(nn.LayerNorm, eps=LN_EPS),
        act_layer=nn.GELU,
    )
    model.head = nn.Sequential(
        nn.Linear(EMBED_DIM, HEAD_DIM_HIDDEN), nn.GELU(), nn.Linear(HEAD_DIM_HIDDEN, NUM_CLASSES)
    )
    return model


def _unpack(module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return the float ``(weight, bias)`` of a dynamically quantized TorchScript Linear."""
    weight, bias = torch.ops.quantized.linear_unpack(module._packed_params._packed_params)
    weight = weight.dequantize() if weight.is_quantized else weight
    return weight.float().contiguous(), None if bias is None else bias.detach().float().contiguous()


def convert_torchscript(path: str) -> dict[str, torch.Tensor]:
    """Return the float state dict of :func:`build_vit_mnist_tiny` for the ViT4MNIST TorchScript file.

    Loads ``path`` with ``torch.jit.load`` (a one-off conversion of a trusted file); the int8 Linear
    weights are unpacked and dequantized, LayerNorm parameters, the class token and the position
    embedding are read from the traced graph's constants. Raises CheckpointError when the file does
    not have the expected structure.
    """
    try:
        ts = torch.jit.load(path, map_location="cpu")
    except (OSError, RuntimeError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot load TorchScript {path}: {reason}") from None
    _, consts = ts.code_with_constants
    # Tensor constants in graph order: cls token, pos embedding, then LayerNorm (weight, bias) x 12.
    tensors = [v for k, v in sorted(consts.const_mapping.items(), key=lambda kv: int(kv[0][1:]))
               if isinstance(v, torch.Tensor) and v.is_floating_point() and v.dim() > 0]
    cls_tokens = [t for t in tensors if tuple(t.shape) == (1, 1, EMBED_DIM)]
    pos_embeds = [t for t in tensors if tuple(t.shape) == (1, 17, EMBED_DIM)]
    norms = [t for t in tensors if tuple(t.shape) == (EMBED_DIM,)]
    scales = [v for v in consts.const_mapping.values()
              if isinstance(v, torch.Tensor) and v.dim() == 0 and v.is_floating_point()]
    if len(cls_tokens) != 1 or len(pos_embeds) != 1 or len(norms) != 4 * DEPTH or len(scales) != 1:
        raise CheckpointError(
            f"{path}: unexpected TorchScript constants (cls {len(cls_tokens)}, pos {len(pos_embeds)}, "
            f"norm tensors {len(norms)}, scalar floats {len(scales)}); is this the ViT4MNIST file?"
        )
    scale = float(scales[0])
    if not math.isclose(scale, ORIGINAL_ATTN_SCALE, rel_tol=1e-9):
        raise CheckpointError(f"{path}: attention scale {scale} != expected {ORIGINAL_ATTN_SCALE}")
    # The layer_norm calls appear in forward order (attention norm, then MLP norm, per layer), and the
    # constants are numbered in order of first use in the code; verify that against the code text.
    code = ts.code
    used = [line.split("CONSTANTS.")[1:3] for line in code.splitlines() if "torch.layer_norm(" in line]
    if len(used) != 2 * DEPTH:
        raise CheckpointError(f"{path}: expected {2 * DEPTH} layer_norm calls, found {len(used)}")
    by_name = consts.const_mapping
    norm_pairs = []
    for names in used:
        w_name, b_name = (n.split(")")[0].split(",")[0].strip() for n in names)
        norm_pairs.append((by_name[w_name].float(), by_name[b_name].float()))

    sd: dict[str, torch.Tensor] = {}
    w, b = _unpack(ts.patch_to_embedding)
    if tuple(w.shape) != (EMBED_DIM, PATCH_SIZE * PATCH_SIZE * IN_CHANS):
        raise CheckpointError(f"{path}: patch_to_embedding weight has shape {tuple(w.shape)}")
    # (p1 p2 c) flattening -> conv weight [out, c, p1, p2]
    sd["patch_embed.proj.weight"] = w.reshape(EMBED_DIM, PATCH_SIZE, PATCH_SIZE, IN_CHANS).permute(0, 3, 1, 2).contiguous()
    sd["patch_embed.proj.bias"] = b
    sd["cls_token"] = cls_tokens[0].float().clone()
    sd["pos_embed"] = pos_embeds[0].float().clone()
    q_factor = ORIGINAL_ATTN_SCALE / TIMM_ATTN_SCALE
    for i in range(DEPTH):
        attn_res, ff_res = getattr(ts.transformer.layers, str(i)).children()
        attn = attn_res.fn.fn
        ff = ff_res.fn.fn
        p = f"blocks.{i}."
        sd[p + "norm1.weight"], sd[p + "norm1.bias"] = norm_pairs[2 * i]
        qkv_w, qkv_b = _unpack(attn.to_qkv)
        if qkv_b is not None or tuple(qkv_w.shape) != (3 * EMBED_DIM, EMBED_DIM):
            raise CheckpointError(f"{path}: layer {i} to_qkv is not Linear(64, 192, bias=False)")
        qkv_w = qkv_w.clone()
        qkv_w[:EMBED_DIM] *= q_factor  # fold 0.125 / head_dim**-0.5 into q
        sd[p + "attn.qkv.weight"] = qkv_w
        sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"] = _unpack(attn.to_out)
        sd[p + "norm2.weight"], sd[p + "norm2.bias"] = norm_pairs[2 * i + 1]
        sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"] = _unpack(getattr(ff.net, "0"))
        sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"] = _unpack(getattr(ff.net, "2"))
    sd["head.0.weight"], sd["head.0.bias"] = _unpack(getattr(ts.mlp_head, "0"))
    sd["head.2.weight"], sd["head.2.bias"] = _unpack(getattr(ts.mlp_head, "2"))

    expected = build_vit_mnist_tiny().state_dict()
    if set(sd) != set(expected):
        raise CheckpointError(f"{path}: converted keys differ from the timm model: "
                              f"missing {sorted(set(expected) - set(sd))[:3]}, extra {sorted(set(sd) - set(expected))[:3]}")
    for key, value in sd.items():
        if value is None or value.shape != expected[key].shape:
            raise CheckpointError(f"{path}: {key} has shape {None if value is None else tuple(value.shape)}, "
                                  f"expected {tuple(expected[key].shape)}")
    return {k: sd[k] for k in expected}


@register_model("vit_mnist_tiny")
def _build_registered(cfg: Mapping[str, Any]) -> tuple[nn.Module, dict]:
    """Return (the MNIST toy ViT as a timm VisionTransformer, its preprocessing record)."""
    kwargs_from(cfg, accepts_kwargs=False)
    return build_vit_mnist_tiny(), {"input": "28x28 grayscale", **MNIST_PREPROCESS}
