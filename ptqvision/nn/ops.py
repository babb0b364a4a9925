"""The one interface of quantized ops, and the ops that transformers add (matmul, softmax).

Every quantized op says which quantizers it has (by role) and which weights; calibration,
reconstruction, hardening, the evaluation invariants, checkpoints and the placement table iterate over
that, never over a tuple of concrete types. A weight's quantizer has the weight's role name.
"""
from __future__ import annotations

from typing import Iterator, Optional

import torch
from torch import nn

from ..quant.base import Quantizer


class QuantOp:
    """Mixin of every quantized op. ``quantize_weight`` False runs the op on its raw weights."""

    quantize_weight: bool = True

    def quantizers(self) -> dict[str, Quantizer]:
        """Return the op's quantizers by role ('weight', 'input', 'output', 'q', 'k', ...), None left out."""
        raise NotImplementedError

    def weights(self) -> dict[str, nn.Parameter]:
        """Return the quantized weights by role (the quantizer of each has the same role); possibly none."""
        return {}

    def set_quantizer(self, role: str, quantizer: Quantizer) -> None:
        """Replace the quantizer of ``role`` (reconstruction swaps a weight's quantizer for AdaRound)."""
        setattr(self, self.quantizer_attr(role), quantizer)

    def quantizer_attr(self, role: str) -> str:
        """Return the attribute that holds the quantizer of ``role``."""
        return f"{role}_quantizer"

    def op_kind(self) -> str:
        """Return a short name of the op for the placement table."""
        return type(self).__name__


def quant_ops(model: nn.Module) -> Iterator[tuple[str, QuantOp]]:
    """Yield (path, op) for every quantized op of ``model`` in module order."""
    for name, m in model.named_modules():
        if isinstance(m, QuantOp):
            yield name, m


def weight_quantizers(model: nn.Module) -> list[Quantizer]:
    """Return the weight quantizers of every quantized op."""
    return [op.quantizers()[role] for _, op in quant_ops(model) for role in op.weights() if role in op.quantizers()]


def weight_quantizer_ids(model: nn.Module) -> set[int]:
    """Return the ids of the quantizers that quantize a weight."""
    return {id(q) for q in weight_quantizers(model)}


def _maybe(q: Optional[Quantizer], x: torch.Tensor, partner: Optional[torch.Tensor] = None) -> torch.Tensor:
    if q is None:
        return x
    return q(x, partner) if q.needs_partner else q(x)


class QuantMatMul(nn.Module, QuantOp):
    """``a @ b`` with either operand fake-quantized (q·kᵀ and A·V in attention); no weights."""

    def __init__(self, a_quantizer: Optional[Quantizer] = None, b_quantizer: Optional[Quantizer] = None,
                 a_role: str = "a", b_role: str = "b") -> None:
        super().__init__()
        if a_role == b_role:
            raise ValueError("the two operands need different roles")
        self.a_role, self.b_role = a_role, b_role
        # registered under their roles (q_quantizer, k_quantizer, ...) so the placement table reads well
        setattr(self, f"{a_role}_quantizer", a_quantizer)
        setattr(self, f"{b_role}_quantizer", b_quantizer)

    def quantizers(self) -> dict[str, Quantizer]:
        out = {role: getattr(self, f"{role}_quantizer") for role in (self.a_role, self.b_role)}
        return {k: v for k, v in out.items() if v is not None}

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        qa, qb = getattr(self, f"{self.a_role}_quantizer"), getattr(self, f"{self.b_role}_quantizer")
        return _maybe(qa, a, b) @ _maybe(qb, b)

    def extra_repr(self) -> str:
        return f"{self.a_role} @ {self.b_role}"


class QuantSoftmax(nn.Module, QuantOp):
    """softmax over ``dim`` with its output fake-quantized. The quantizer may take the tensor the
    probabilities are multiplied with next (V) as a partner, for a range search on A·V (AGQ)."""

    def __init__(self, quantizer: Optional[Quantizer], dim: int = -1) -> None:
        super().__init__()
        self.quantizer = quantizer
        self.dim = dim

    def quantizers(self) -> dict[str, Quantizer]:
        return {"softmax": self.quantizer} if self.quantizer is not None else {}

    def quantizer_attr(self, role: str) -> str:
        return "quantizer"

    def forward(self, x: torch.Tensor, partner: Optional[torch.Tensor] = None) -> torch.Tensor:
        return _maybe(self.quantizer, x.softmax(dim=self.dim), partner)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
