"""The reconstruction engine: units, cached streams, the optimisation loop, losses, hardening."""
from .engine import Reconstructor, describe_partition, reconstruct, set_quant_state
from .graph import build_schedule, run_items
from .losses import fisher_weight, logits_kl, lp_loss
from .partition import Unit, find_blocks, partition, partition_table, unit_quantizers
from .settings import ReconSettings, apply_preset

__all__ = ["Reconstructor", "describe_partition", "reconstruct", "set_quant_state", "build_schedule", "run_items",
           "fisher_weight", "logits_kl", "lp_loss", "Unit", "find_blocks", "partition", "partition_table",
           "unit_quantizers", "ReconSettings", "apply_preset"]
