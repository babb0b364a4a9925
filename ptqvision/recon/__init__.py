"""The reconstruction engine: cached streams over an adapter's schedule, the optimisation loop, losses,
hardening, resume."""
from ..models.fx_schedule import build_schedule, find_blocks, partition
from ..models.schedule import Item, Schedule, Unit, partition_table, run_items, unit_quantizers
from .engine import Reconstructor, describe_partition, reconstruct, set_quant_state
from .losses import fisher_weight, logits_kl, lp_loss
from .settings import ReconSettings, apply_preset

__all__ = ["Reconstructor", "describe_partition", "reconstruct", "set_quant_state", "build_schedule", "run_items",
           "fisher_weight", "logits_kl", "lp_loss", "Item", "Schedule", "Unit", "find_blocks", "partition",
           "partition_table", "unit_quantizers", "ReconSettings", "apply_preset"]
