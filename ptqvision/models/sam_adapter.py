"""Segment Anything: the adapter of REFERENCE.md section 5 (PTQ4SAM's placement, units and Bimodal Integration).

Placement (as data, :data:`SAM_RULES`), by module swapping on segment-anything's own classes:

- image encoder, every block: the inputs of ``qkv`` and ``proj``; q, k and v after the reshape to
  (B·heads, HW, C), each its own quantizer, q quantized before it is scaled (the scale is applied to the
  product) and the decomposed relative-position terms computed from the quantized q; the post-softmax map;
  the inputs of the MLP's ``lin1`` (post-LayerNorm) and ``lin2`` (post-GELU); the neck: the inputs of its
  1×1 and 3×3 convolutions;
- mask decoder, every ``Attention`` (self-attention, token-to-image, image-to-token, final token-to-image):
  the inputs of ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj``; q, k, v after projection; the
  post-softmax map (with v as its partner, for AGQ's search); the inputs of the MLP's ``lin1`` and ``lin2``;
- every weight of those layers per output channel; no separate matmul quantizers (the matmuls consume
  quantized operands); everything at the config's bits (no 8-bit first or last layer);
- in full precision on purpose, and listed so by ``--dry-run``: the patch embedding, the position
  embedding, every LayerNorm, the relative-position tables, residual adds, the prompt encoder, the IoU and
  mask tokens, the output upscaling, the hypernetwork MLPs, the IoU head and the final
  ``hyper_in @ upscaled_embedding``. A probe forward proves that no linear, conv, matmul or softmax runs
  outside a quantized op or those modules (trap 7).

Units (``recon.partition='sub_block'``, PTQ4SAM's), in network order: per encoder block its attention and
its MLP (norms and residuals outside), the neck, per two-way block ``self_attn``,
``cross_attn_token_to_image``, ``mlp``, ``cross_attn_image_to_token``, then ``final_attn_token_to_image``.
A decoder attention unit takes the queries, the keys and the queries' positional encoding and adds the
encodings as the block does (the keys' encoding is the image's dense positional encoding, a constant).
``'layer'`` makes every quantized linear or conv its own unit. A sample is one image: the engine's batch is
one image with all its windows or prompts. The loss sums over the last dim (PTQ4SAM).

The image's keys enter the decoder once, not once per prompt: segment-anything repeats the image
embedding for every prompt; the twin broadcasts it over the prompts until the first image-to-token
attention makes them differ (the same values, P times less memory and compute in the first layer).
"""
from __future__ import annotations

import copy
import logging
import math
import os
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from ..errors import UnsupportedLayerError
from ..nn import QuantConfig, QuantConv2d, QuantLinear, calibrate
from ..nn.big import channel_signs, fold_signs, key_density
from ..nn.calibrate import quantization_off
from ..nn.coverage import uncovered_ops
from ..nn.ops import QuantMatMul, QuantOp, QuantSoftmax
from ..nn.twin import apply_overrides, weight_quantizer
from ..quant import Log2Quantizer
from ..quant.base import Quantizer
from ..registry import ADAPTERS
from .adapters import ADAPTER_ATTR, ModelAdapter
from .sam import SamBoxModel, prompt_embeddings
from .schedule import Item, Schedule, Unit
from .swap import Step, quant_class, rule_quantizer, set_module, split_layers

LOG = logging.getLogger("ptqvision")

# The placement rules, as data: which tensor of which op is quantized, at which bits and granularity.
SAM_RULES = {
    "linear": {"weight": ("w_bits", "channel"), "input": ("a_bits", "tensor")},   # encoder, decoder transformer
    "neck_conv": {"weight": ("w_bits", "channel"), "input": ("a_bits", "tensor")},
    "attention": {"q": ("a_bits", "tensor"), "k": ("a_bits", "tensor"), "v": ("a_bits", "tensor"),
                  "softmax": ("a_bits", "softmax")},
}
# Submodules kept in full precision on purpose, with the reason shown by --dry-run (whole subtrees).
FP_SUBTREES = {
    "image_encoder.patch_embed": "patch embedding (conv on the image)",
    "prompt_encoder": "prompt encoder (box and point embeddings, dense positional encoding)",
    "mask_decoder.iou_token": "IoU token",
    "mask_decoder.mask_tokens": "mask tokens",
    "mask_decoder.output_upscaling": "output upscaling (transposed convs, LayerNorm2d, GELU)",
    "mask_decoder.output_hypernetworks_mlps": "hypernetwork MLPs",
    "mask_decoder.iou_prediction_head": "IoU prediction head",
    "mask_decoder.mask_product": "the final hyper_in @ upscaled_embedding",
}
LN_NAMES = ("LayerNorm", "LayerNorm2d")
# BIG's attentions: the decoder's token-to-image cross-attentions
BIG_ATTENTIONS = ("cross_attn_token_to_image", "final_attn_token_to_image")
BIG_PLOT = "big_keys.png"


def _sa():
    from segment_anything.modeling import image_encoder, mask_decoder, transformer

    return image_encoder, transformer, mask_decoder


# --- quantized modules --------------------------------------------------------------------------------------
class DecomposedRelPos(nn.Module):
    """The decomposed relative-position terms added to the encoder's logits, computed in full precision from
    the (quantized) q and the attention's FP tables (a parameterless module, so it can be listed as FP)."""

    def forward(self, attn: torch.Tensor, q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor,
                size: tuple[int, int]) -> torch.Tensor:
        from segment_anything.modeling.image_encoder import add_decomposed_rel_pos

        return add_decomposed_rel_pos(attn, q, rel_pos_h, rel_pos_w, size, size)


class MaskProduct(nn.Module):
    """``hyper_in @ upscaled_embedding``: one mask per mask token (full precision, listed so)."""

    def forward(self, hyper_in: torch.Tensor, upscaled: torch.Tensor) -> torch.Tensor:
        b, c, h, w = upscaled.shape
        return (hyper_in @ upscaled.view(b, c, h * w)).view(hyper_in.shape[0], -1, h, w)


def _attention_quantizers(m: nn.Module, cfg: QuantConfig) -> None:
    """Give an attention its q, k, v and softmax quantizers, and matmuls that consume them."""
    rules = SAM_RULES["attention"]
    for role in ("q", "k", "v"):
        setattr(m, f"{role}_quantizer", rule_quantizer(cfg, *rules[role]))
    m.softmax = QuantSoftmax(rule_quantizer(cfg, *rules["softmax"]), dim=-1)
    m.matmul_qk = QuantMatMul(None, None, "q", "k")   # operands quantized by q/k_quantizer (no separate ones)
    m.matmul_av = QuantMatMul(None, None, "A", "v")   # operands quantized by the softmax and v_quantizer


class QuantEncoderAttention:
    """segment-anything's image-encoder ``Attention`` with q, k, v, A quantized (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, _ = x.shape
        qkv = self.qkv(x).reshape(B, H * W, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, B * self.num_heads, H * W, -1).unbind(0)
        q, k, v = self.q_quantizer(q), self.k_quantizer(k), self.v_quantizer(v)
        attn = self.matmul_qk(q, k.transpose(-2, -1)) * self.scale  # q quantized before it is scaled
        if self.use_rel_pos:
            attn = self.rel_pos(attn, q, self.rel_pos_h, self.rel_pos_w, (H, W))
        attn = self.softmax(attn, v)
        x = self.matmul_av(attn, v).view(B, self.num_heads, H, W, -1).permute(0, 2, 3, 1, 4).reshape(B, H, W, -1)
        return self.proj(x)


class QuantDecoderAttention:
    """segment-anything's two-way-transformer ``Attention`` with q, k, v (after projection) and A quantized."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q = self.q_quantizer(self._separate_heads(self.q_proj(q), self.num_heads))
        k = self.k_quantizer(self._separate_heads(self.k_proj(k), self.num_heads))
        v = self.v_quantizer(self._separate_heads(self.v_proj(v), self.num_heads))
        attn = self.matmul_qk(q, k.permute(0, 1, 3, 2)) / math.sqrt(q.shape[-1])
        attn = self.softmax(attn, v)
        return self.out_proj(self._recombine_heads(self.matmul_av(attn, v)))


def decoder_tokens(mask_decoder: nn.Module, sparse: torch.Tensor) -> torch.Tensor:
    """Return the decoder's tokens (P, 1 + masks + prompts, C): the IoU and mask tokens, then the prompts'."""
    output_tokens = torch.cat([mask_decoder.iou_token.weight, mask_decoder.mask_tokens.weight], dim=0)
    return torch.cat((output_tokens.unsqueeze(0).expand(sparse.size(0), -1, -1), sparse), dim=1)


def image_keys(embedding: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """Return the decoder's keys (rows, HW, C) from the image embedding (1, C, h, w) plus the dense prompt
    embedding: one row for the image when the dense embedding is the same for every prompt (no mask input:
    segment-anything's broadcast ``no_mask_embed``), else one per prompt."""
    shared = dense.shape[0] == 1 or dense.stride(0) == 0
    src = embedding + (dense[:1] if shared else dense)
    return src.flatten(2).permute(0, 2, 1)


def mask_head(mask_decoder: nn.Module, hs: torch.Tensor, keys: torch.Tensor, size: tuple[int, int],
              multimask_output: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (mask logits (P, k, 4h, 4w), predicted IoU (P, k)) from the transformer's output tokens ``hs``
    and keys (the full-precision end of the decoder): mask slot 0 (k = 1), or slots 1.. for
    ``multimask_output`` (segment-anything's choice of slices)."""
    md = mask_decoder
    rows, _, c = keys.shape
    src = keys.transpose(1, 2).reshape(rows, c, *size)
    upscaled = md.output_upscaling(src)
    mask_tokens = hs[:, 1:1 + md.num_mask_tokens, :]
    hyper_in = torch.stack([mlp(mask_tokens[:, i, :]) for i, mlp in enumerate(md.output_hypernetworks_mlps)], dim=1)
    masks = md.mask_product(hyper_in, upscaled)
    iou = md.iou_prediction_head(hs[:, 0, :])
    slots = slice(1, None) if multimask_output else slice(0, 1)
    return masks[:, slots], iou[:, slots]


class QuantMaskDecoder:
    """segment-anything's ``MaskDecoder`` whose image keys are broadcast over the prompts (not repeated) and
    whose final mask product is a listed full-precision module."""

    def forward(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor, sparse_prompt_embeddings: torch.Tensor,
                dense_prompt_embeddings: torch.Tensor, multimask_output: bool) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = decoder_tokens(self, sparse_prompt_embeddings)
        keys = image_keys(image_embeddings, dense_prompt_embeddings)
        hs, keys = two_way(self.transformer, tokens, keys, image_pe.flatten(2).permute(0, 2, 1))
        return mask_head(self, hs, keys, tuple(image_embeddings.shape[-2:]), multimask_output)


def two_way(transformer: nn.Module, tokens: torch.Tensor, keys: torch.Tensor,
            key_pe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (queries, keys) after segment-anything's TwoWayTransformer (its forward without the flatten)."""
    queries = tokens
    for layer in transformer.layers:
        queries, keys = layer(queries=queries, keys=keys, query_pe=tokens, key_pe=key_pe)
    attn_out = transformer.final_attn_token_to_image(q=queries + tokens, k=keys + key_pe, v=keys)
    return transformer.norm_final_attn(queries + attn_out), keys


# --- schedule pieces -----------------------------------------------------------------------------------------
class DecoderAttentionUnit(nn.Module):
    """One attention of the two-way transformer as a unit: (queries[, keys][, query_pe]) -> its output, with the
    positional encodings added as TwoWayAttentionBlock adds them. ``mode``: 'self_first' (the first layer's
    self-attention, no encoding), 'self', 'token_to_image' or 'image_to_token'. The keys' encoding is the
    image's dense positional encoding, recomputed from the (full-precision) prompt encoder."""

    MODES = ("self_first", "self", "token_to_image", "image_to_token")

    def __init__(self, attn: nn.Module, mode: str, prompt_encoder: nn.Module) -> None:
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        self.attn, self.mode = attn, mode
        object.__setattr__(self, "prompt_encoder", prompt_encoder)  # used, not owned

    def key_pe(self) -> torch.Tensor:
        return self.prompt_encoder.get_dense_pe().flatten(2).permute(0, 2, 1)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        if self.mode == "self_first":
            (queries,) = args
            return self.attn(q=queries, k=queries, v=queries)
        if self.mode == "self":
            queries, query_pe = args
            q = queries + query_pe
            return self.attn(q=q, k=q, v=queries)
        queries, keys, query_pe = args
        q, k = queries + query_pe, keys + self.key_pe()
        if self.mode == "token_to_image":
            return self.attn(q=q, k=k, v=keys)
        return self.attn(q=k, k=q, v=queries)

    def extra_repr(self) -> str:
        return self.mode


class NeckUnit(nn.Module):
    """The encoder's neck on (B, H, W, C) tokens -> the image embedding (B, C', H, W)."""

    def __init__(self, neck: nn.Module) -> None:
        super().__init__()
        self.neck = neck

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neck(x.permute(0, 3, 1, 2))


# --- the adapter ---------------------------------------------------------------------------------------------
@ADAPTERS.register_module(name="sam")
class SamAdapter(ModelAdapter):
    """segment-anything SAM (ViT-B/L/H and the project's small demo SAM) behind :class:`SamBoxModel`."""

    name = "sam"
    partitions = ("sub_block", "layer")

    @classmethod
    def claims(cls, model: nn.Module) -> bool:
        return isinstance(model, SamBoxModel)

    # -- placement ---------------------------------------------------------------------------------------
    def quantize(self, model: nn.Module, config: QuantConfig) -> nn.Module:
        if not isinstance(model, SamBoxModel):
            raise UnsupportedLayerError(f"the sam adapter handles SamBoxModel (model.type='sam'), not "
                                        f"{type(model).__name__}")
        cfg = QuantConfig.from_any(config)
        image_encoder, transformer, _ = _sa()
        twin = copy.deepcopy(model).eval()
        enc, dec = twin.image_encoder, twin.mask_decoder

        def quant_linear(path: str, rule: str = "linear") -> None:
            m = twin.get_submodule(path)
            cls = QuantConv2d if isinstance(m, nn.Conv2d) else QuantLinear
            q = cls.from_float(m, weight_quantizer(m, cfg))
            q.input_quantizer = rule_quantizer(cfg, *SAM_RULES[rule]["input"])
            set_module(twin, path, q)

        for i, blk in enumerate(enc.blocks):
            attn = blk.attn
            if type(attn) is not image_encoder.Attention:
                raise UnsupportedLayerError(f"encoder attention {type(attn).__name__} at 'image_encoder.blocks.{i}' "
                                            "has no quantized counterpart")
            attn.__class__ = quant_class(type(attn), QuantEncoderAttention)
            _attention_quantizers(attn, cfg)
            if attn.use_rel_pos:
                attn.rel_pos = DecomposedRelPos()
            for name in ("attn.qkv", "attn.proj", "mlp.lin1", "mlp.lin2"):
                quant_linear(f"image_encoder.blocks.{i}.{name}")
        for j, m in enumerate(enc.neck):
            if isinstance(m, nn.Conv2d):
                quant_linear(f"image_encoder.neck.{j}", "neck_conv")
        for path, attn in list(dec.transformer.named_modules()):
            if isinstance(attn, transformer.Attention):
                attn.__class__ = quant_class(type(attn), QuantDecoderAttention)
                _attention_quantizers(attn, cfg)
                for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
                    quant_linear(f"mask_decoder.transformer.{path}.{name}")
        for i, _ in enumerate(dec.transformer.layers):
            for name in ("lin1", "lin2"):
                quant_linear(f"mask_decoder.transformer.layers.{i}.mlp.{name}")
        dec.__class__ = quant_class(type(dec), QuantMaskDecoder)
        dec.mask_product = MaskProduct()
        apply_overrides(twin, cfg)
        setattr(twin, ADAPTER_ATTR, self.name)
        twin.ptq_bimodal_integration = bool(cfg.bimodal_integration)
        self._check_parameters(twin)
        self._check_coverage(twin)
        return twin

    def _fp_modules(self, twin: nn.Module) -> list[nn.Module]:
        """Return every module kept in full precision on purpose (the listed subtrees, whole)."""
        roots = [twin.get_submodule(p) for p in FP_SUBTREES]
        roots += [m for m in twin.modules() if isinstance(m, DecomposedRelPos)]
        return [m for root in roots for m in root.modules()]

    def _check_parameters(self, twin: nn.Module) -> None:
        """Every module holding parameters is a quantized op, a LayerNorm, inside a listed full-precision module,
        an encoder attention (its relative-position tables) or the encoder (its position embedding)."""
        fp = tuple(p + "." for p in FP_SUBTREES)
        for path, m in twin.named_modules():
            own = {n for n, _ in m.named_parameters(recurse=False)}
            if not own or isinstance(m, (QuantOp, Quantizer)) or type(m).__name__ in LN_NAMES:
                continue
            if path in FP_SUBTREES or path.startswith(fp):
                continue
            if isinstance(m, QuantEncoderAttention) and own <= {"rel_pos_h", "rel_pos_w"}:
                continue
            if path == "image_encoder" and own <= {"pos_embed"}:
                continue
            raise UnsupportedLayerError(f"module {type(m).__name__} at '{path or '<model>'}' holds parameters "
                                        f"{sorted(own)} that no placement rule covers")

    @contextmanager
    def _small_grid(self, twin: nn.Module) -> Iterator[int]:
        """Context: the twin runs on a grid of window size + 2 tokens (its position embedding cropped, the
        prompt encoder's grid set to match) and yields the image size for it. Every code path of the full
        size runs (windows with padding, global attention, relative positions, the decoder) at a fraction of
        the cost: SAM-B's probe at 1024×1024 takes minutes on a CPU."""
        enc, pe = twin.image_encoder, twin.prompt_encoder
        patch = enc.patch_embed.proj.kernel_size[0]
        windows = [b.window_size for b in enc.blocks if b.window_size > 0]
        grid = min(max(windows + [1]) + 2, enc.img_size // patch)
        saved = (enc.pos_embed, pe.image_embedding_size)
        if enc.pos_embed is not None:
            enc.pos_embed = nn.Parameter(saved[0][:, :grid, :grid], requires_grad=False)
        pe.image_embedding_size = (grid, grid)
        try:
            yield grid * patch
        finally:
            if enc.pos_embed is not None:
                enc.pos_embed = saved[0]
            pe.image_embedding_size = saved[1]

    def _check_coverage(self, twin: nn.Module) -> None:
        device = next(twin.parameters()).device
        with self._small_grid(twin) as size, quantization_off(twin):  # quantizers pass through: no calibration needed
            image = torch.zeros(1, 3, size, size, device=device)
            boxes = torch.tensor([[0.0, 0.0, size / 2, size / 2], [size / 4, size / 4, size - 1, size - 1]],
                                 device=device)
            left = uncovered_ops(twin, lambda m: m(image, boxes), self._fp_modules(twin))
        if left:
            raise UnsupportedLayerError("ops outside every quantized op (they would stay silently in full "
                                        f"precision): {'; '.join(left[:4])}")

    def full_precision(self, qmodel: nn.Module) -> list[dict]:
        rows = [{"name": "image_encoder.pos_embed", "what": "absolute position embedding (parameter add)"}]
        rows += [{"name": p, "what": w} for p, w in FP_SUBTREES.items()]
        for path, m in qmodel.named_modules():
            if type(m).__name__ in LN_NAMES:
                rows.append({"name": path, "what": type(m).__name__})
            elif isinstance(m, DecomposedRelPos):
                rows.append({"name": path, "what": "decomposed relative-position terms (FP tables rel_pos_h/w, "
                                                  "from the quantized q)"})
        for i, _ in enumerate(qmodel.image_encoder.blocks):
            rows.append({"name": f"image_encoder.blocks.{i}.residual", "what": "residual adds"})
        for i, _ in enumerate(qmodel.mask_decoder.transformer.layers):
            rows.append({"name": f"mask_decoder.transformer.layers.{i}.residual",
                         "what": "residual and positional-encoding adds"})
        return rows

    # -- calibration --------------------------------------------------------------------------------------
    def calibrate(self, qmodel: nn.Module, batches: Iterable[Any], device: torch.device, progress: bool = True,
                  forward: Callable | None = None, work_dir: str | None = None) -> dict:
        batches = list(batches)
        record: dict = {}
        if getattr(qmodel, "ptq_bimodal_integration", False):
            record["bimodal_integration"] = self.bimodal_integration(qmodel, batches[0], device, work_dir)
        calibrate(qmodel, batches, device, progress=progress, forward=forward)
        taus = {name: m.chosen_tau for name, m in qmodel.named_modules() if isinstance(m, Log2Quantizer)}
        if taus:
            record["softmax_tau"] = taus
        return record

    @torch.no_grad()
    def bimodal_integration(self, qmodel: nn.Module, batch: tuple, device: torch.device,
                            work_dir: str | None = None) -> list[dict]:
        """BIG (see :mod:`ptqvision.nn.big`) on every token-to-image cross-attention of the decoder, from the
        first calibration image in full precision; return one record per attention (bimodal, peaks, flipped
        channels) and plot the key distributions before and after into ``work_dir``."""
        attns = [(p, m) for p, m in qmodel.mask_decoder.transformer.named_modules()
                 if p.rsplit(".", 1)[-1] in BIG_ATTENTIONS]
        seen: dict[str, torch.Tensor] = {}
        handles = [m.k_proj.register_forward_hook(lambda _m, _a, out, p=p: seen.__setitem__(p, out.detach()))
                   for p, m in attns]
        try:
            with quantization_off(qmodel):
                qmodel(*[t.to(device) for t in batch])
        finally:
            for h in handles:
                h.remove()
        rows, plots = [], []
        for path, m in attns:
            keys = seen[path]
            before = key_density(keys[0])  # the first prompt's keys (the image's, where shared by the prompts)
            row = {"attention": f"mask_decoder.transformer.{path}", "bimodal": before.bimodal,
                   "peaks": [round(v, 4) for v in before.peak_values()], "channels": int(keys.shape[-1]),
                   "flipped": 0}
            after = None
            if before.bimodal:
                signs = channel_signs(keys)
                fold_signs(m.q_proj, m.k_proj, signs)
                row["flipped"] = int((signs < 0).sum())
                after = key_density(keys[0] * signs)
                row["peaks_after"] = [round(v, 4) for v in after.peak_values()]
            LOG.info("BIG %s: %s (%d peaks), %d of %d channels flipped", row["attention"],
                     "bimodal" if row["bimodal"] else "not bimodal", len(before.peaks), row["flipped"], row["channels"])
            rows.append(row)
            plots.append((row["attention"], before, after))
        if work_dir:
            _plot_key_densities(plots, os.path.join(work_dir, BIG_PLOT))
        return rows

    # -- units ---------------------------------------------------------------------------------------------
    def schedule(self, qmodel: nn.Module, partition_mode: str = "sub_block", skip_first_layer: bool = False) -> Schedule:
        self.check_partition(partition_mode)
        enc, pe, md = qmodel.image_encoder, qmodel.prompt_encoder, qmodel.mask_decoder
        paths = {id(m): n for n, m in qmodel.named_modules()}
        items: list[Item] = []

        def add(module: nn.Module, inputs: list[str], outputs: list[str], unit: str | None = None) -> None:
            item = Item(module, inputs, outputs, Unit(unit, "sub_block", loss_dim=-1) if unit else None)
            if unit and partition_mode == "layer":
                split_layers(item, paths)
            items.append(item)

        def embed(image: torch.Tensor) -> torch.Tensor:
            x = enc.patch_embed(image)
            return x + enc.pos_embed if enc.pos_embed is not None else x

        add(Step(embed, "patch_embed + pos_embed"), ["image"], ["x0"])
        for i, blk in enumerate(enc.blocks):
            p = f"image_encoder.blocks.{i}"
            add(Step(_encoder_pre_attention(blk), f"{p}.norm1 (+ window partition)"), [f"x{i}"], [f"h{i}"])
            add(blk.attn, [f"h{i}"], [f"a{i}"], f"{p}.attn")
            add(Step(_encoder_post_attention(blk), f"{p} residual, norm2"), [f"a{i}", f"x{i}"], [f"r{i}", f"n{i}"])
            add(blk.mlp, [f"n{i}"], [f"m{i}"], f"{p}.mlp")
            add(Step(lambda r, m: r + m, f"{p} residual"), [f"r{i}", f"m{i}"], [f"x{i + 1}"])
        add(NeckUnit(enc.neck), [f"x{len(enc.blocks)}"], ["embedding"], "image_encoder.neck")

        def prepare(embedding: torch.Tensor, prompts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            sparse, dense = prompt_embeddings(pe, prompts)
            return decoder_tokens(md, sparse), image_keys(embedding, dense)

        decoder = len(items)  # the decoder's values may be recomputed per step from the image embedding and prompts
        add(Step(prepare, "prompt encoder, tokens, image keys"), ["embedding", "prompts"], ["tokens", "k0"])
        queries, keys = "tokens", "k0"
        for i, layer in enumerate(md.transformer.layers):
            p = f"mask_decoder.transformer.layers.{i}"
            if layer.skip_first_layer_pe:
                add(DecoderAttentionUnit(layer.self_attn, "self_first", pe), [queries], [f"sa{i}"], f"{p}.self_attn")
                add(Step(layer.norm1, f"{p}.norm1"), [f"sa{i}"], [f"qa{i}"])
            else:
                add(DecoderAttentionUnit(layer.self_attn, "self", pe), [queries, "tokens"], [f"sa{i}"], f"{p}.self_attn")
                add(Step(lambda q, o, n=layer.norm1: n(q + o), f"{p} residual, norm1"), [queries, f"sa{i}"], [f"qa{i}"])
            add(DecoderAttentionUnit(layer.cross_attn_token_to_image, "token_to_image", pe), [f"qa{i}", keys, "tokens"],
                [f"t2i{i}"], f"{p}.cross_attn_token_to_image")
            add(Step(lambda q, o, n=layer.norm2: n(q + o), f"{p} residual, norm2"), [f"qa{i}", f"t2i{i}"], [f"qb{i}"])
            add(layer.mlp, [f"qb{i}"], [f"mlp{i}"], f"{p}.mlp")
            add(Step(lambda q, o, n=layer.norm3: n(q + o), f"{p} residual, norm3"), [f"qb{i}", f"mlp{i}"], [f"qc{i}"])
            add(DecoderAttentionUnit(layer.cross_attn_image_to_token, "image_to_token", pe), [f"qc{i}", keys, "tokens"],
                [f"i2t{i}"], f"{p}.cross_attn_image_to_token")
            add(Step(lambda k, o, n=layer.norm4: n(k + o), f"{p} residual, norm4"), [keys, f"i2t{i}"], [f"k{i + 1}"])
            queries, keys = f"qc{i}", f"k{i + 1}"
        t = md.transformer
        add(DecoderAttentionUnit(t.final_attn_token_to_image, "token_to_image", pe), [queries, keys, "tokens"],
            ["fin"], "mask_decoder.transformer.final_attn_token_to_image")
        add(Step(lambda q, o: t.norm_final_attn(q + o), "residual, norm_final_attn"), [queries, "fin"], ["hs"])
        size = tuple(pe.image_embedding_size)
        add(Step(lambda hs, k: mask_head(md, hs, k, size), "mask head (full precision)"), ["hs", keys], ["prediction"])
        return Schedule(items, ["image", "prompts"], "prediction", recompute_from=decoder)


def _encoder_pre_attention(blk: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    from segment_anything.modeling.image_encoder import window_partition

    def run(x: torch.Tensor) -> torch.Tensor:
        h = blk.norm1(x)
        return window_partition(h, blk.window_size)[0] if blk.window_size > 0 else h

    return run


def _encoder_post_attention(blk: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    from segment_anything.modeling.image_encoder import window_unpartition

    def run(a: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if blk.window_size > 0:
            H, W = x.shape[1], x.shape[2]
            ws = blk.window_size
            pad = ((ws - H % ws) % ws + H, (ws - W % ws) % ws + W)
            a = window_unpartition(a, ws, pad, (H, W))
        r = x + a
        return r, blk.norm2(r)

    return run


def _plot_key_densities(plots: list, path: str) -> None:
    """Write one panel per attention: the KDE of the first prompt's keys before and after the sign fold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(plots), figsize=(4.5 * len(plots), 3.4), squeeze=False)
    for ax, (name, before, after) in zip(axes[0], plots):
        ax.plot(before.grid, before.density, label=f"before ({len(before.peaks)} peaks)")
        ax.plot(before.grid[before.peaks], before.density[before.peaks], "x", color="C0")
        if after is not None:
            ax.plot(after.grid, after.density, label=f"after sign fold ({len(after.peaks)} peaks)")
        ax.set_title(name.replace("mask_decoder.transformer.", ""), fontsize=9)
        ax.set_xlabel("k_proj output (first prompt)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
