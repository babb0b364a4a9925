"""Build the quantized twin of a model from placement rules (REFERENCE.md section 2).

The model is traced with torch.fx (module paths kept), identities and dropouts are removed,
BatchNorm is folded, every Conv2d/Linear becomes a quantized layer, an elementwise activation right
after a layer is fused into it, and activation quantizers are placed:
  * at the output of every layer (after its activation), except a layer whose output feeds a
    residual add (the conv before the add, the downsample conv) and the network output;
  * at the output of every residual add (after its activation), if ``quantize_residual_output``;
  * at the input of any layer whose input would otherwise reach it unquantized (after a
    squeeze-excitation product, an unfolded norm, a concatenation, an unquantized residual add):
    every layer sees quantized activations;
  * never on the input image.
With ``head_stem_8bit`` the first layer's and the heads' weights and the activation feeding each head
are 8 bit (the heads: the layers whose output reaches the network output through no other layer, the
classifier of a classification network, both classifiers of LRASPP). Size computations
(``x.shape[-2:]`` for an upsampling) carry no values: placement looks past them. Name-pattern
overrides are applied last.
"""
from __future__ import annotations

import copy
import fnmatch
import operator
from typing import Iterable, Iterator, Mapping

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, InvariantError, UnsupportedLayerError
from ..quant import AdaRoundQuantizer, UniformQuantizer
from ..quant.base import Quantizer
from .config import QuantConfig
from .fold import fold_bn_into_conv
from .modules import QUANT_LAYERS, QuantConv2d, QuantLinear
from .ops import weight_quantizer_ids
from .trace import trace

ACTIVATION_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardtanh, nn.Hardswish, nn.SiLU, nn.GELU,
                      nn.ELU, nn.Mish)
ACTIVATION_FUNCTIONS = {F.relu: nn.ReLU, torch.relu: nn.ReLU, F.relu6: nn.ReLU6, F.silu: nn.SiLU,
                        F.hardswish: nn.Hardswish, F.gelu: nn.GELU}
ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
# Leaves that hold no weights to quantize and are kept in full precision as they are (identities and
# dropouts are removed from the graph before this is consulted).
FP_MODULES = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten,
              nn.ZeroPad2d, nn.ConstantPad2d, nn.Softmax,
              nn.Upsample, nn.Sigmoid, nn.Hardsigmoid, nn.Tanh, nn.modules.batchnorm._BatchNorm,
              nn.LayerNorm, nn.GroupNorm) + ACTIVATION_MODULES
IDENTITY_MODULES = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.Dropout1d, nn.AlphaDropout)
# Ops that keep a quantized tensor on (or, for average pooling, as close as the protocol requires to)
# its grid: a tensor reaching a layer only through them counts as quantized.
GRID_MODULES = (nn.MaxPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten,
                nn.ZeroPad2d, nn.ReLU)
GRID_FUNCTIONS = (torch.flatten, F.adaptive_avg_pool2d, F.avg_pool2d, F.max_pool2d, F.adaptive_max_pool2d,
                  F.relu, torch.relu, F.pad)
GRID_METHODS = ("flatten", "view", "reshape", "permute", "transpose", "contiguous", "mean", "relu", "squeeze",
                "unsqueeze")
# Size computations (see is_shape_node): x.size(), x.dim(), and indexing / arithmetic on sizes.
SHAPE_METHODS = ("size", "dim")
SHAPE_FUNCTIONS = (operator.getitem, operator.add, operator.sub, operator.mul, operator.floordiv, operator.truediv,
                   operator.neg)
FUNCTIONAL_WEIGHT_OPS = (F.conv1d, F.conv2d, F.conv3d, F.linear, F.conv_transpose2d, torch.conv2d)
# Subclasses whose forward is the plain op (timm's Linear only adds a dtype cast; Conv2dSame pads
# TF-style, which QuantConv2d reproduces). Any other subclass may change the maths and is refused.
CONV_SUBCLASSES = ("Conv2dSame",)
LINEAR_SUBCLASSES = ("Linear", "NonDynamicallyQuantizableLinear")


def layer_kind(m: nn.Module | None) -> str | None:
    """Return 'conv', 'conv_same', 'linear' for a layer with a quantized counterpart, else None."""
    if type(m) is nn.Conv2d:
        return "conv"
    if isinstance(m, nn.Conv2d) and type(m).__name__ in CONV_SUBCLASSES:
        return "conv_same"
    if type(m) is nn.Linear or (isinstance(m, nn.Linear) and type(m).__name__ in LINEAR_SUBCLASSES):
        return "linear"
    return None


def _module(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return gm.get_submodule(node.target) if node.op == "call_module" else None


def _set_module(gm: fx.GraphModule, path: str, module: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(gm.get_submodule(parent) if parent else gm, leaf, module)


def is_shape_node(node: fx.Node) -> bool:
    """Return whether ``node`` computes only sizes: ``x.shape``, ``x.size()``, ``x.dim()``, or indexing and
    arithmetic on those (e.g. the ``size=x.shape[-2:]`` of an upsampling). It carries no activation values,
    so the placement and the schedule look past it (a segmentation network upsamples to its input's size)."""
    if node.op == "call_function" and node.target is getattr:
        return len(node.args) >= 2 and node.args[1] == "shape"
    if node.op == "call_method" and node.target in SHAPE_METHODS:
        return True
    if node.op == "call_function" and node.target in SHAPE_FUNCTIONS:
        inputs = node.all_input_nodes
        return bool(inputs) and all(is_shape_node(n) for n in inputs)
    return False


def data_inputs(node: fx.Node) -> list[fx.Node]:
    """Return the input nodes of ``node`` that carry values, i.e. all but the size computations."""
    return [n for n in node.all_input_nodes if not is_shape_node(n)]


def is_residual_add(node: fx.Node) -> bool:
    """Return whether ``node`` adds two activation tensors (not a tensor and a constant or parameter, nor
    two sizes)."""
    is_add = (node.op == "call_function" and node.target in ADD_FUNCTIONS) or (
        node.op == "call_method" and node.target in ("add", "add_"))
    if not is_add or len(node.args) < 2:
        return False
    return all(isinstance(t, fx.Node) and t.op != "get_attr" and not is_shape_node(t) for t in node.args[:2])


def _is_activation(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        return isinstance(_module(gm, node), ACTIVATION_MODULES)
    return node.op == "call_function" and node.target in ACTIVATION_FUNCTIONS


def _activation_module(gm: fx.GraphModule, node: fx.Node) -> nn.Module:
    if node.op == "call_module":
        act = copy.deepcopy(_module(gm, node))
        if hasattr(act, "inplace"):
            act.inplace = False  # the layer's raw output must stay intact for autograd and hooks
        return act
    kwargs = {k: v for k, v in node.kwargs.items() if k != "inplace"}
    return ACTIVATION_FUNCTIONS[node.target](**kwargs)


def _is_quant_point(gm: fx.GraphModule, node: fx.Node) -> bool:
    return isinstance(_module(gm, node), (UniformQuantizer,) + QUANT_LAYERS)


def _preserves_grid(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        m = _module(gm, node)
        return isinstance(m, GRID_MODULES) or getattr(type(m), "ptq_preserves_grid", False)
    if node.op == "call_function":
        return node.target in GRID_FUNCTIONS
    return node.op == "call_method" and node.target in GRID_METHODS


def _input_source(gm: fx.GraphModule, node: fx.Node) -> tuple[str, UniformQuantizer | None]:
    """Return where the tensor entering ``node`` was last quantized, looking back through grid-preserving
    ops: ('quantizer', q), ('image', None) for the network input, or ('none', None)."""
    current = node
    while True:
        inputs = data_inputs(current)
        if len(inputs) != 1:
            return "none", None
        current = inputs[0]
        m = _module(gm, current)
        if isinstance(m, UniformQuantizer):
            return "quantizer", m
        if isinstance(m, QUANT_LAYERS):
            return ("quantizer", m.output_quantizer) if m.output_quantizer is not None else ("none", None)
        if current.op == "placeholder":
            return "image", None
        if not _preserves_grid(gm, current):
            return "none", None


# --- passes ------------------------------------------------------------------------------------
def _remove_identities(gm: fx.GraphModule) -> None:
    """Drop identities and dropouts (no-ops at inference) so they cannot hide an activation or a BN."""
    for node in list(gm.graph.nodes):
        m = _module(gm, node)
        if (isinstance(m, IDENTITY_MODULES) or type(m).__name__ == "DropPath") and len(node.all_input_nodes) == 1:
            node.replace_all_uses_with(node.all_input_nodes[0])
            gm.graph.erase_node(node)


def _fold_batchnorms(gm: fx.GraphModule) -> None:
    for node in list(gm.graph.nodes):
        bn = _module(gm, node)
        if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or not node.args:
            continue
        src = node.args[0]
        conv = _module(gm, src) if isinstance(src, fx.Node) else None
        if not isinstance(conv, (nn.Conv2d, nn.Linear)) or len(src.users) != 1:
            continue
        fold_bn_into_conv(conv, bn)
        tail = getattr(bn, "act", None)  # timm's BatchNormAct2d carries its activation
        if isinstance(tail, nn.Module) and not isinstance(tail, nn.Identity):
            _set_module(gm, node.target, tail)
        else:
            node.replace_all_uses_with(src)
            gm.graph.erase_node(node)


def _check_supported(gm: fx.GraphModule) -> None:
    seen: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target in FUNCTIONAL_WEIGHT_OPS:
            raise UnsupportedLayerError(
                f"functional {getattr(node.target, '__name__', node.target)} at node '{node.name}' has no "
                "quantized counterpart (use an nn.Module layer)")
        if node.op != "call_module":
            continue
        m = _module(gm, node)
        if layer_kind(m) is not None:
            seen[node.target] = seen.get(node.target, 0) + 1
            if seen[node.target] > 1:
                raise UnsupportedLayerError(f"layer '{node.target}' is called more than once (shared weights)")
            continue
        if isinstance(m, FP_MODULES):
            continue
        has_params = any(True for _ in m.parameters(recurse=True))
        if has_params or isinstance(m, (nn.modules.conv._ConvNd, nn.Embedding, nn.RNNBase, nn.MultiheadAttention)):
            raise UnsupportedLayerError(
                f"layer type {type(m).__name__} at '{node.target}' has no quantized counterpart")


def weight_quantizer(layer: nn.Module, cfg: QuantConfig) -> UniformQuantizer:
    """Return the weight quantizer of ``layer`` by the config (per output channel or per tensor)."""
    per_channel = cfg.w_granularity == "channel"
    return UniformQuantizer(cfg.w_bits, num_channels=layer.weight.shape[0] if per_channel else 1,
                            ch_axis=0 if per_channel else None, symmetric=cfg.w_symmetric,
                            observer=cfg.w_observer, observer_kwargs={"p": cfg.lp_p})


def act_quantizer(cfg: QuantConfig, bits: int | None = None, heads: int | None = None) -> UniformQuantizer:
    """Return a per-tensor activation quantizer by the config (``bits`` default ``cfg.a_bits``), or one per
    head along axis 1 of a (B, heads, tokens, dim) tensor when ``heads`` is given."""
    per_head = {"num_channels": heads, "ch_axis": 1, "per_head": True} if heads else {}
    return UniformQuantizer(cfg.a_bits if bits is None else bits, symmetric=cfg.a_symmetric,
                            observer=cfg.a_observer, observer_kwargs={"p": cfg.lp_p}, **per_head)


def _swap_layers(gm: fx.GraphModule, cfg: QuantConfig) -> list[fx.Node]:
    layers = []
    for node in gm.graph.nodes:
        m = _module(gm, node)
        kind = layer_kind(m)
        if kind is None:
            continue
        if kind == "linear":
            q = QuantLinear.from_float(m, weight_quantizer(m, cfg))
        else:
            q = QuantConv2d.from_float(m, weight_quantizer(m, cfg), tf_same_padding=kind == "conv_same")
        _set_module(gm, node.target, q)
        layers.append(node)
    return layers


def _fuse_activations(gm: fx.GraphModule, layers: Iterable[fx.Node]) -> None:
    for node in layers:
        users = list(node.users)
        if len(users) == 1 and _is_activation(gm, users[0]):
            act_node = users[0]
            gm.get_submodule(node.target).act = _activation_module(gm, act_node)
            act_node.replace_all_uses_with(node)
            gm.graph.erase_node(act_node)


def _consumers(gm: fx.GraphModule, node: fx.Node) -> Iterator[fx.Node]:
    """Yield the ops that consume the tensor of ``node``, looking through single-input pass-through ops
    (pooling, flatten, dropout, ...) and stopping at quantization points, adds and multi-input ops."""
    for user in node.users:
        if is_shape_node(user):  # reading a tensor's size consumes none of its values
            continue
        passthrough = user.op in ("call_module", "call_function", "call_method") \
            and len(data_inputs(user)) == 1 and not _is_quant_point(gm, user)
        if passthrough:
            yield from _consumers(gm, user)
        else:
            yield user


def _only_feeds_add_or_output(gm: fx.GraphModule, node: fx.Node) -> bool:
    """Return whether every consumer of ``node``'s tensor is a residual add or the network output:
    the conv right before an add, the downsample conv and the classifier are not output-quantized."""
    consumers = list(_consumers(gm, node))
    return bool(consumers) and all(u.op == "output" or is_residual_add(u) for u in consumers)


def _insert_quantizer_after(gm: fx.GraphModule, node: fx.Node, path: str, cfg: QuantConfig) -> fx.Node:
    gm.add_submodule(path, act_quantizer(cfg))
    with gm.graph.inserting_after(node):
        qnode = gm.graph.call_module(path, (node,))
    qnode.meta["nn_module_stack"] = dict(node.meta.get("nn_module_stack", {}))
    node.replace_all_uses_with(qnode, delete_user_cb=lambda u: u is not qnode)
    return qnode


def _owner_path(node: fx.Node) -> str:
    stack = list(node.meta.get("nn_module_stack", {}).keys())
    return stack[-1].split("@")[0] if stack else ""


def _place_activation_quantizers(gm: fx.GraphModule, cfg: QuantConfig, layers: list[fx.Node]) -> None:
    for node in layers:
        if not _only_feeds_add_or_output(gm, node):
            gm.get_submodule(node.target).output_quantizer = act_quantizer(cfg)
    if not cfg.quantize_residual_output:
        return
    used: set[str] = set()
    for node in list(gm.graph.nodes):
        if not is_residual_add(node):
            continue
        tail = node
        users = list(node.users)
        if len(users) == 1 and _is_activation(gm, users[0]):
            tail = users[0]
        if any(u.op == "output" for u in _consumers(gm, tail)):
            continue
        owner = _owner_path(node)
        base = f"{owner}.out_quantizer" if owner else "out_quantizer"
        path, k = base, 1
        while path in used:
            path, k = f"{base}{k}", k + 1
        used.add(path)
        _insert_quantizer_after(gm, tail, path, cfg)


def _quantize_layer_inputs(gm: fx.GraphModule, cfg: QuantConfig, layers: list[fx.Node]) -> None:
    for node in layers:
        if _input_source(gm, node)[0] == "none":
            gm.get_submodule(node.target).input_quantizer = act_quantizer(cfg)


def _quantizer_feeding(gm: fx.GraphModule, node: fx.Node) -> UniformQuantizer | None:
    """Return the quantizer whose output ``node`` consumes (its own input quantizer first)."""
    own = gm.get_submodule(node.target).input_quantizer
    return own if own is not None else _input_source(gm, node)[1]


def unquantized_inputs(gm: fx.GraphModule) -> list[str]:
    """Return the layers whose input is neither the image nor a quantized tensor (empty for a valid twin)."""
    bad = []
    for node in gm.graph.nodes:
        layer = _module(gm, node)
        if isinstance(layer, QUANT_LAYERS) and layer.input_quantizer is None \
                and _input_source(gm, node)[0] == "none":
            bad.append(node.target)
    return bad


def head_layers(gm: fx.GraphModule, layers: list[fx.Node]) -> list[fx.Node]:
    """Return the heads: the layers whose output reaches the network output through no other layer, in network
    order (a classifier's fc; both classifiers of LRASPP, whose sum is upsampled to the output); the last layer
    when none does."""
    layer_set = set(layers)
    found: set[fx.Node] = set()
    seen: set[fx.Node] = set()
    stack = [n for n in gm.graph.nodes if n.op == "output"]
    while stack:
        node = stack.pop()
        for dep in data_inputs(node):
            if dep in seen:
                continue
            seen.add(dep)
            if dep in layer_set:
                found.add(dep)
            else:
                stack.append(dep)
    return [n for n in layers if n in found] or layers[-1:]


def _apply_bit_rules(gm: fx.GraphModule, cfg: QuantConfig, layers: list[fx.Node]) -> None:
    if cfg.head_stem_8bit and layers:
        gm.get_submodule(layers[0].target).weight_quantizer.set_bits(8)
        for node in head_layers(gm, layers):
            gm.get_submodule(node.target).weight_quantizer.set_bits(8)
            feeding = _quantizer_feeding(gm, node)
            if feeding is not None:
                feeding.set_bits(8)
    if cfg.stem_output_8bit and layers:
        stem = gm.get_submodule(layers[0].target)
        if stem.output_quantizer is not None:
            stem.output_quantizer.set_bits(8)
    apply_overrides(gm, cfg)


def apply_overrides(model: nn.Module, cfg: QuantConfig) -> None:
    """Apply ``cfg.overrides`` (fnmatch patterns on op or quantizer names) to the quantizers' bits; a pattern
    that matches nothing is an error."""
    weights = weight_quantizer_ids(model)
    for i, rule in enumerate(cfg.overrides):
        matched = False
        for name, q in iter_quantizers(model):
            owner = name.rpartition(".")[0]
            if not fnmatch.fnmatchcase(owner, rule["pattern"]) and not fnmatch.fnmatchcase(name, rule["pattern"]):
                continue
            matched = True
            key = "w_bits" if id(q) in weights else "a_bits"
            if key in rule:
                q.set_bits(rule[key])
        if not matched:
            raise ConfigError(f"quant.overrides[{i}]: pattern {rule['pattern']!r} matches no layer or quantizer "
                              "(see the names in --dry-run)")


# --- public ------------------------------------------------------------------------------------
def quantize(model: nn.Module, config: QuantConfig | Mapping | None = None) -> fx.GraphModule:
    """Return the quantized twin of ``model`` (uncalibrated); ``model`` itself is left untouched."""
    cfg = QuantConfig.from_any(config)
    model = copy.deepcopy(model).eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    gm = trace(model)
    _remove_identities(gm)
    if cfg.fold_bn:
        _fold_batchnorms(gm)
    _check_supported(gm)
    layers = _swap_layers(gm, cfg)
    if not layers:
        raise UnsupportedLayerError(f"model {type(model).__name__} has no Conv2d or Linear layer to quantize")
    _fuse_activations(gm, layers)
    _place_activation_quantizers(gm, cfg, layers)
    _quantize_layer_inputs(gm, cfg, layers)
    _apply_bit_rules(gm, cfg, layers)
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
    return gm.to(device)


def iter_quantizers(model: nn.Module) -> Iterator[tuple[str, Quantizer]]:
    """Yield (name, quantizer) for every quantizer of ``model`` in module order (AdaRound wrappers and the
    quantizer they wrap both count)."""
    for name, m in model.named_modules():
        if isinstance(m, Quantizer):
            yield name, m


def placement(model: nn.Module) -> list[dict]:
    """Return one record per quantizer: name, kind (weight/act), type, bits, granularity, symmetric, observer."""
    weights = weight_quantizer_ids(model)
    return [{"name": name, "kind": "weight" if id(q) in weights else "act", **q.describe()}
            for name, q in iter_quantizers(model) if not isinstance(q, AdaRoundQuantizer)]


def check_ready(model: nn.Module) -> None:
    """Raise InvariantError unless every quantizer of every op is calibrated, frozen, hard-rounded and never
    drops (evaluation), whatever its kind."""
    problems = [f"{name}: {p}" for name, q in iter_quantizers(model) for p in q.eval_problems()]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise InvariantError("quantized model not ready for evaluation: " + "; ".join(problems[:3]) + more)
