"""Vision transformers from timm (ViT, DeiT, Swin): the adapter of REFERENCE.md section 4.

Placement (as data, in :data:`VIT_RULES`): every Linear is input-quantized per tensor with its weight per
output channel; q and k are the quantized operands of q·kᵀ, the post-softmax map A and v those of A·V (per
tensor or per head); A's quantizer is uniform, log2, log√2 or AGQ; the patch embedding's input (the image)
is quantized at ``quant.patch_embed_a_bits`` (8) and its weight at W bits; LayerNorms, residual adds,
position embeddings, class tokens, LayerScale, Swin's relative-position bias and shifted-window mask stay in
full precision and are listed so. timm's fused ``scaled_dot_product_attention`` is replaced by explicit
quantized ops; a probe forward then proves that no linear, conv, matmul, softmax or SDPA runs outside a
quantized op (trap 7), and Swin's bias/mask adds, being outside any block rule, get no quantizer (trap 8).

Units: the patch embedding, each transformer block (or its attention and MLP sub-blocks), each Swin
PatchMerging, and the head. The model is cut by module swapping, not tracing, so the same seams serve
models torch.fx cannot trace (SAM).
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Iterable

import torch
from torch import nn

from ..errors import UnsupportedLayerError
from ..nn import QuantConfig, QuantConv2d, QuantLinear, calibrate
from ..nn.calibrate import quantization_off
from ..nn.coverage import uncovered_ops
from ..nn.twin import layer_kind, weight_quantizer
from ..nn.ops import QuantMatMul, QuantSoftmax
from ..nn.reparam import reparameterize_layernorm
from ..quant import Log2Quantizer, MinMaxObserver
from ..quant.base import Quantizer
from ..registry import ADAPTERS
from .adapters import ADAPTER_ATTR, ModelAdapter, refuse_sam_options
from .schedule import Item, Schedule, Unit
from .swap import Step, quant_class, rule_quantizer, set_module, split_layers

# The placement rules, as data: which tensor of which op is quantized, at which bits and granularity.
VIT_RULES = {
    "linear": {"weight": ("w_bits", "channel"), "input": ("a_bits", "tensor")},
    "patch_embed": {"weight": ("w_bits", "channel"), "input": ("patch_embed_a_bits", "tensor")},
    "matmul_qk": {"q": ("a_bits", "attn"), "k": ("a_bits", "attn")},
    "softmax": {"softmax": ("a_bits", "softmax")},
    "matmul_av": {"v": ("a_bits", "attn")},
}
# Modules with parameters that stay in full precision on purpose (they hold no matmul with a weight).
FP_MODULE_NAMES = ("LayerNorm", "LayerScale", "LayerNorm2d", "RmsNorm")


def _timm():
    import timm  # noqa: F401  (after ptqvision's torchvision shim)
    from timm.layers.attention import Attention
    from timm.models.swin_transformer import SwinTransformer, WindowAttention
    from timm.models.vision_transformer import VisionTransformer

    return Attention, WindowAttention, VisionTransformer, SwinTransformer


# --- explicit attention ---------------------------------------------------------------------------
class _QuantAttentionMixin:
    """Replaces a timm attention's forward by explicit quantized ops (``matmul_qk``, ``softmax``,
    ``matmul_av``); q is quantized before the 1/sqrt(d) scale, which is applied to the product."""

    matmul_qk: QuantMatMul
    softmax: QuantSoftmax
    matmul_av: QuantMatMul

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                add_logits: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        attn = self.matmul_qk(q, k.transpose(-2, -1)) * self.scale
        attn = add_logits(attn)  # masks and position biases: full-precision adds on the logits
        attn = self.softmax(attn, v)
        attn = self.attn_drop(attn)
        return self.matmul_av(attn, v)


class QuantViTAttention(_QuantAttentionMixin):
    """timm ``Attention`` (ViT, DeiT) with explicit quantized attention."""

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        from timm.layers.attention import maybe_add_mask, resolve_self_attn_mask

        B, N, _ = x.shape
        gate = self.gate(x).sigmoid() if getattr(self, "gate", None) is not None else None
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        x = self._attend(q, k, v, lambda a: maybe_add_mask(a, resolve_self_attn_mask(N, a, attn_mask, is_causal)))
        x = x.transpose(1, 2).reshape(B, N, self.attn_dim)
        x = self.norm(x)
        if gate is not None:
            x = x * gate
        return self.proj_drop(self.proj(x))


class QuantWindowAttention(_QuantAttentionMixin):
    """timm Swin ``WindowAttention`` with explicit quantized attention; the relative-position bias and the
    shifted-window mask are added to the logits in full precision (they are not residual adds)."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B_, N, _ = x.shape
        qkv = self.qkv(x).reshape(B_, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)

        def add_logits(attn: torch.Tensor) -> torch.Tensor:
            attn = attn + self._get_rel_pos_bias()
            if mask is not None:
                num_win = mask.shape[0]
                attn = attn.view(-1, num_win, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
                attn = attn.view(-1, self.num_heads, N, N)
            return attn

        x = self._attend(q, k, v, add_logits)
        x = x.transpose(1, 2).reshape(B_, N, -1)
        return self.proj_drop(self.proj(x))


# --- schedule pieces --------------------------------------------------------------------------------
class ResidualBranch(nn.Module):
    """x + drop_path(scale(body(norm(x)))): one residual branch of a transformer block as a sub-block unit.
    ``call`` runs the body when the block wraps it in more than a module call (Swin's window partition)."""

    def __init__(self, norm: nn.Module, body: nn.Module, scale: nn.Module, drop_path: nn.Module,
                 call: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        self.norm, self.body, self.scale, self.drop_path = norm, body, scale, drop_path
        self.call = call  # a bound method of the block, not a module: the block is not owned

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        return x + self.drop_path(self.scale(self.call(h) if self.call is not None else self.body(h)))


class TokenResidualBranch(ResidualBranch):
    """A residual branch applied to (B, H, W, C) maps flattened to tokens (Swin's MLP)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        return super().forward(x.reshape(B, -1, C)).reshape(B, H, W, C)


def sub_blocks(block: nn.Module, swin: bool) -> tuple[nn.Module, nn.Module]:
    """Return the attention and MLP sub-blocks of a timm ViT or Swin block."""
    if swin:
        return (ResidualBranch(block.norm1, block.attn, nn.Identity(), block.drop_path1, call=block._attn),
                TokenResidualBranch(block.norm2, block.mlp, nn.Identity(), block.drop_path2))
    return (ResidualBranch(block.norm1, block.attn, block.ls1, block.drop_path1),
            ResidualBranch(block.norm2, block.mlp, block.ls2, block.drop_path2))


class ViTHead(nn.Module):
    """The model's ``forward_head`` (pooling, fc norm, classifier; DeiT's distillation head too)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        for name in ("fc_norm", "head", "head_dist"):
            if isinstance(getattr(model, name, None), nn.Module):
                setattr(self, name, getattr(model, name))
        object.__setattr__(self, "model", model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(x)


@ADAPTERS.register_module(name="vit")
class ViTAdapter(ModelAdapter):
    """timm VisionTransformer (ViT, DeiT incl. distilled) and SwinTransformer."""

    name = "vit"
    partitions = ("block", "sub_block", "layer")

    @classmethod
    def claims(cls, model: nn.Module) -> bool:
        try:
            _, _, vit_cls, swin_cls = _timm()
        except ImportError:  # timm missing: not a timm transformer
            return False
        return isinstance(model, (vit_cls, swin_cls))

    # -- placement ---------------------------------------------------------------------------------
    def quantize(self, model: nn.Module, config: QuantConfig) -> nn.Module:
        attn_cls, window_cls, vit_cls, swin_cls = _timm()
        if not isinstance(model, (vit_cls, swin_cls)):
            raise UnsupportedLayerError(f"the vit adapter handles timm VisionTransformer/DeiT/Swin, not "
                                        f"{type(model).__name__}")
        cfg = QuantConfig.from_any(config)
        refuse_sam_options(cfg, self.name)
        twin = copy.deepcopy(model).eval()
        for path, m in list(twin.named_modules()):
            if isinstance(m, window_cls):
                self._explicit_attention(m, quant_class(type(m), QuantWindowAttention), cfg)
            elif isinstance(m, attn_cls):
                self._explicit_attention(m, quant_class(type(m), QuantViTAttention), cfg)
            elif hasattr(m, "fused_attn") and not isinstance(m, (QuantViTAttention, QuantWindowAttention)):
                raise UnsupportedLayerError(f"attention {type(m).__name__} at '{path}' has no quantized counterpart")
        proj = twin.patch_embed.proj
        if type(proj) is not nn.Conv2d:
            raise UnsupportedLayerError(f"patch embedding {type(proj).__name__} has no quantized counterpart")
        twin.patch_embed.proj = QuantConv2d.from_float(proj, weight_quantizer(proj, cfg))
        twin.patch_embed.proj.input_quantizer = rule_quantizer(cfg, *VIT_RULES["patch_embed"]["input"], 1)
        for path, m in list(twin.named_modules()):
            if layer_kind(m) == "linear":
                q = QuantLinear.from_float(m, weight_quantizer(m, cfg))
                q.input_quantizer = rule_quantizer(cfg, *VIT_RULES["linear"]["input"], 1)
                set_module(twin, path, q)
            elif isinstance(m, (nn.Conv2d, nn.Embedding, nn.MultiheadAttention)) and not isinstance(m, QuantConv2d):
                raise UnsupportedLayerError(f"layer {type(m).__name__} at '{path}' has no quantized counterpart")
        self._apply_bit_rules(twin, cfg)
        self._check_parameters(twin)
        setattr(twin, ADAPTER_ATTR, self.name)
        twin.ptq_reparam_targets = self._reparam_targets(twin) if cfg.ln_reparam else []
        twin.ptq_fixed_ranges = {}
        self._check_coverage(twin)
        return twin

    def _explicit_attention(self, m: nn.Module, quant_cls: type, cfg: QuantConfig) -> None:
        m.__class__ = quant_cls
        m.fused_attn = False
        heads = m.num_heads
        m.matmul_qk = QuantMatMul(rule_quantizer(cfg, *VIT_RULES["matmul_qk"]["q"], heads),
                                  rule_quantizer(cfg, *VIT_RULES["matmul_qk"]["k"], heads), "q", "k")
        m.softmax = QuantSoftmax(rule_quantizer(cfg, *VIT_RULES["softmax"]["softmax"], heads), dim=-1)
        m.matmul_av = QuantMatMul(None, rule_quantizer(cfg, *VIT_RULES["matmul_av"]["v"], heads), "A", "v")

    def _apply_bit_rules(self, twin: nn.Module, cfg: QuantConfig) -> None:
        from ..nn.twin import apply_overrides

        if cfg.head_stem_8bit:  # the CNN convention, if asked for: patch embedding and head weights at 8 bit
            twin.patch_embed.proj.weight_quantizer.set_bits(8)
            for m in ViTHead(twin).modules():
                if isinstance(m, QuantLinear):
                    m.weight_quantizer.set_bits(8)
        apply_overrides(twin, cfg)

    def _check_parameters(self, twin: nn.Module) -> None:
        """Every module holding parameters is a quantized op, a listed full-precision module, or the
        attention (whose only own parameter is Swin's relative-position table)."""
        for path, m in twin.named_modules():
            own = [n for n, _ in m.named_parameters(recurse=False)]
            if not own or isinstance(m, (QuantLinear, QuantConv2d, Quantizer)) or type(m).__name__ in FP_MODULE_NAMES:
                continue
            if isinstance(m, _QuantAttentionMixin) and set(own) <= {"relative_position_bias_table"}:
                continue
            if m is twin and set(own) <= {"cls_token", "dist_token", "reg_token", "pos_embed", "absolute_pos_embed"}:
                continue
            if type(m).__name__ == "PatchEmbed" or set(own) <= {"absolute_pos_embed", "pos_embed"}:
                continue
            raise UnsupportedLayerError(f"module {type(m).__name__} at '{path or '<model>'}' holds parameters "
                                        f"{own} that no placement rule covers")

    def _check_coverage(self, twin: nn.Module) -> None:
        pe = twin.patch_embed
        size = tuple(pe.img_size) if getattr(pe, "img_size", None) else (224, 224)
        x = torch.zeros(1, pe.proj.in_channels, *size, device=next(twin.parameters()).device)
        with quantization_off(twin):  # before calibration: the ops run, their quantizers pass through
            left = uncovered_ops(twin, lambda m: m(x))
        if left:
            raise UnsupportedLayerError("ops outside every quantized op (they would stay silently in full "
                                        f"precision): {'; '.join(left[:4])}")

    def full_precision(self, qmodel: nn.Module) -> list[dict]:
        rows = []
        for name in ("cls_token", "dist_token", "reg_token", "pos_embed", "absolute_pos_embed"):
            if isinstance(getattr(qmodel, name, None), torch.Tensor):
                rows.append({"name": name, "what": "position embedding / token (parameter add or concat)"})
        reparam = {norm: linears for norm, linears in getattr(qmodel, "ptq_reparam_targets", [])}
        for path, m in qmodel.named_modules():
            kind = type(m).__name__
            if path in reparam:
                rows.append({"name": path, "what": f"{kind}, reparameterised (RepQ-ViT): per-channel ranges folded "
                                                  f"into it and into {', '.join(reparam[path])}"})
            elif kind in FP_MODULE_NAMES:
                rows.append({"name": path, "what": kind})
            elif isinstance(m, QuantWindowAttention):
                rows.append({"name": f"{path}.relative_position_bias", "what": "add on the logits (before softmax)"})
                rows.append({"name": f"{path}.window_mask", "what": "shifted-window mask add on the logits"})
            elif isinstance(m, nn.GELU):
                rows.append({"name": path, "what": "GELU (its output is quantized at the next Linear's input)"})
        for path, block in self._blocks(qmodel):
            rows.append({"name": f"{path}.residual", "what": "residual adds"})
        return rows

    # -- calibration ---------------------------------------------------------------------------------
    def _reparam_targets(self, twin: nn.Module) -> list[tuple[str, list[str]]]:
        """Return (LayerNorm path, paths of the Linears reading it) for RepQ-ViT's reparameterisation."""
        out = []
        for path, block in self._blocks(twin):
            out.append((f"{path}.norm1", [f"{path}.attn.qkv"]))
            out.append((f"{path}.norm2", [f"{path}.mlp.fc1"]))
        for path, m in twin.named_modules():
            if type(m).__name__ == "PatchMerging":
                out.append((f"{path}.norm", [f"{path}.reduction"]))
        return out

    def calibrate(self, qmodel: nn.Module, batches: Iterable[Any], device: torch.device, progress: bool = True,
                  forward: Callable | None = None, work_dir: str | None = None) -> dict:
        batches = list(batches)
        record: dict = {}
        if qmodel.ptq_reparam_targets and not qmodel.ptq_fixed_ranges:
            record["ln_reparam"] = self._reparameterize(qmodel, batches, device)
        calibrate(qmodel, batches, device, progress=progress, forward=forward)
        for path, (scale, zero_point) in qmodel.ptq_fixed_ranges.items():
            qmodel.get_submodule(path).set_qparams(scale, zero_point)
        taus = {name: m.chosen_tau for name, m in qmodel.named_modules() if isinstance(m, Log2Quantizer)}
        if taus:
            record["softmax_tau"] = taus
        return record

    @torch.no_grad()
    def _reparameterize(self, qmodel: nn.Module, batches: list, device: torch.device) -> list[dict]:
        """RepQ-ViT: per-channel ranges of every post-LayerNorm activation (full precision), folded into the
        LayerNorm affine and the next Linears' columns; their input quantizers get the per-tensor mean."""
        norms = [qmodel.get_submodule(n) for n, _ in qmodel.ptq_reparam_targets]
        observers = [MinMaxObserver(ch_axis=-1) for _ in norms]  # per channel: the last (embedding) axis
        handles = [n.register_forward_hook(lambda _m, _a, out, o=o: o.update(out)) for n, o in zip(norms, observers)]
        try:
            with quantization_off(qmodel):
                for b in batches:
                    b = b if isinstance(b, (tuple, list)) else (b,)
                    qmodel(*[t.to(device) for t in b])
        finally:
            for h in handles:
                h.remove()
        rows = []
        for i, (norm_path, linear_paths) in enumerate(qmodel.ptq_reparam_targets):
            linears = [qmodel.get_submodule(p) for p in linear_paths]
            bits = linears[0].input_quantizer.bits
            scale_c, zp_c = observers[i].qparams(bits, symmetric=False)
            scale, zero_point = reparameterize_layernorm(norms[i], linears, scale_c, zp_c)
            for p in linear_paths:
                qmodel.ptq_fixed_ranges[f"{p}.input_quantizer"] = (scale.detach().clone(), zero_point.detach().clone())
            ratio = scale_c / scale_c.mean()
            rows.append({"norm": norm_path, "linears": linear_paths,
                         "scale_ratio_range": [float(ratio.min()), float(ratio.max())]})
        return rows

    def state(self, qmodel: nn.Module) -> dict:
        # the reparameterisation gives bias-less Linears (timm's qkv) a bias: the rebuilt twin needs it too
        return {"biased_linears": [n for n, m in qmodel.named_modules() if isinstance(m, QuantLinear) and m.bias is not None]}

    def restore(self, qmodel: nn.Module, state: dict) -> None:
        for path in state.get("biased_linears", []):
            m = qmodel.get_submodule(path)
            if m.bias is None:
                m.bias = nn.Parameter(torch.zeros(m.out_features, device=m.weight.device, dtype=m.weight.dtype))

    # -- units -----------------------------------------------------------------------------------------
    @staticmethod
    def _blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
        _, _, vit_cls, swin_cls = _timm()
        if isinstance(model, swin_cls):
            return [(f"layers.{i}.blocks.{j}", b) for i, stage in enumerate(model.layers)
                    for j, b in enumerate(stage.blocks)]
        return [(f"blocks.{i}", b) for i, b in enumerate(model.blocks)]

    def schedule(self, qmodel: nn.Module, partition_mode: str = "block", skip_first_layer: bool = False) -> Schedule:
        self.check_partition(partition_mode)
        _, _, vit_cls, swin_cls = _timm()
        items: list[Item] = []
        counter = [0]
        paths = {id(m): n for n, m in qmodel.named_modules()}

        def add(module: nn.Module, unit: Unit | None) -> None:
            src = f"x{counter[0]}"
            counter[0] += 1
            item = Item(module, [src if counter[0] > 1 else "image"], [f"x{counter[0]}"], unit)
            if unit is not None and partition_mode == "layer":  # AdaRound: every op with weights on its own
                split_layers(item, paths)
            items.append(item)

        add(qmodel.patch_embed, None if skip_first_layer else Unit("patch_embed", "layer"))
        swin = isinstance(qmodel, swin_cls)
        if not swin:
            add(Step(lambda x: qmodel.norm_pre(qmodel.patch_drop(qmodel._pos_embed(x))), "pos_embed"), None)
        stages = [(f"layers.{i}", s) for i, s in enumerate(qmodel.layers)] if swin else [("", None)]
        for stage_path, stage in stages:
            if stage is not None and not isinstance(stage.downsample, nn.Identity):
                add(stage.downsample, Unit(f"{stage_path}.downsample", "layer"))
            blocks = [(f"{stage_path}.blocks.{j}", b) for j, b in enumerate(stage.blocks)] if stage is not None \
                else self._blocks(qmodel)
            for path, block in blocks:
                if partition_mode in ("block", "layer"):
                    add(block, Unit(path, "block"))
                else:
                    attn, mlp = sub_blocks(block, swin)
                    add(attn, Unit(f"{path}.attn", "sub_block"))
                    add(mlp, Unit(f"{path}.mlp", "sub_block"))
        add(qmodel.norm, None)
        add(qmodel.head if swin else ViTHead(qmodel), Unit("head", "layer"))
        return Schedule(items, ["image"], items[-1].outputs[0])
