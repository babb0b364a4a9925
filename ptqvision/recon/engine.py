"""The block-reconstruction engine (AdaRound → BRECQ → QDrop, REFERENCE.md sections 1 and 3).

The model's adapter cuts the quantized twin into a schedule of units and plain items
(:mod:`ptqvision.models.schedule`; torch.fx for CNNs, module swapping for transformers), whatever the
family: a unit is captured inputs (any number, any shapes) → a module → outputs. Two streams of cached
values run through it side by side over the calibration set: the full-precision stream (every quantizer off) and
the quantized stream (the prefix as already reconstructed). At each unit the engine reads the unit's
quantized and full-precision inputs and its full-precision output (the target) from the streams,
optimises the unit, hardens it, and moves both streams past it. The network is thus run once per
stage, not once per unit.

A stage learns AdaRound rounding, activation steps (LSQ), or both (QDrop); BRECQ runs a weight stage
with activations off, then an activation stage. PD-Quant adds to the unit's local loss a prediction
difference: the unit's purely quantized output runs through the rest of the schedule (its tail: later
units and the head, whatever the architecture) in full precision to logits, compared by KL with the
cached full-precision logits; and it can correct each block's calibration input (:mod:`.correction`).
After every unit the model state is checkpointed atomically, so a killed run resumes at the next unit
with identical results. Layer units inside a piece that runs whole (an eager block) get their inputs and
targets captured with hooks as the piece runs on each stream.
"""
from __future__ import annotations

import json
import logging
import math
import os
import resource
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
from torch import nn
from tqdm import tqdm

from ..errors import CheckpointError, ConfigError
from ..models.schedule import Item, Schedule, inner_item, last_uses, partition_table, run_items, unit_quantizers
from ..nn import activation_quantizers
from ..nn.calibrate import calibrate_activations, observing
from ..nn.ops import quant_ops
from ..quant import AdaRoundQuantizer, beta_schedule, drop_select
from ..utils.io import atomic_torch_save, atomic_write_json, load_torch_file
from .cache import CachedValue, CachePolicy, choose_policy, fits_on_device
from .correction import correct_distribution, correction_blocks
from .losses import fisher_weight, logits_kl, lp_loss
from .settings import ReconSettings

LOG = logging.getLogger("ptqvision")
STATE_FILE = "recon_state.pth"
RECORDS_FILE = "recon_units.json"
PLOT_FILE = "recon_loss.png"
CURVE_POINTS = 100


@dataclass
class Stage:
    """One pass over the units: what is learned, whether activations are quantized, for how long."""

    name: str
    learn_weights: bool
    learn_acts: bool
    acts_on: bool
    iters: int
    p: float
    act_lr: float
    drop_prob: float


def stages_for(s: ReconSettings) -> list[Stage]:
    """Return the stages of a method: one joint stage (QDrop), or weights then activations (BRECQ)."""
    if s.joint:
        return [Stage("joint", True, s.learn_act_steps, True, s.iters, s.p, s.act_lr, s.drop_prob)]
    a = s.stage2
    return [Stage("weights", True, False, False, s.iters, s.p, s.act_lr, 1.0),
            Stage("acts", False, True, True, a.iters, a.p, a.lr, s.drop_prob)]


# --- quantization state ------------------------------------------------------------------------
def set_quant_state(model: nn.Module, weights: bool, acts: bool) -> None:
    """Turn weight and activation quantization on or off everywhere in ``model``."""
    for _, op in quant_ops(model):
        op.quantize_weight = weights
    for q in activation_quantizers(model):
        q.enabled = acts


def _peak_memory(device: torch.device) -> dict:
    out = {"host_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device.type == "cuda":
        out["device_peak_allocated_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


# --- the engine --------------------------------------------------------------------------------
class Reconstructor:
    """Reconstructs a calibrated quantized twin unit by unit; see the module docstring."""

    def __init__(self, qmodel: nn.Module, batches: Sequence[Any], settings: ReconSettings,
                 device: torch.device, work_dir: str | None = None, seed: int = 1005, fingerprint: str = "",
                 resume: bool = False, progress: bool = True, fp_model: nn.Module | None = None,
                 schedule: Schedule | None = None, distance: Any = None) -> None:
        self.model = qmodel
        self.settings = settings
        self.device = torch.device(device)
        # a batch is one tensor or a tuple of tensors, one per model input (batch-first, same batch size)
        self.batches = [tuple(t.to(self.device) for t in (b if isinstance(b, (tuple, list)) else (b,)))
                        for b in batches]
        self.offsets = [0]
        for b in self.batches:
            self.offsets.append(self.offsets[-1] + b[0].shape[0])
        self.num_samples = self.offsets[-1]
        self.work_dir = work_dir
        self.seed = seed
        self.fingerprint = fingerprint
        self.resume = resume
        self.progress = progress
        if schedule is None:
            from ..models.adapters import adapter_for

            schedule = adapter_for(qmodel).schedule(qmodel, settings.partition, settings.skip_first_layer)
        self.schedule = schedule
        self.distance = distance or logits_kl  # the task's distance between FP and quantized outputs
        self.items, self.inputs, self.final = schedule.items, list(schedule.inputs), schedule.output
        self.units = schedule.units
        if any(it.inner for it in self.items) and (settings.pd_loss or settings.loss == "fisher"):
            raise ConfigError("layer units inside a block have no place in the schedule for the prediction difference "
                              "or the Fisher loss: use recon.partition=block or sub_block with them")
        self.last_use = last_uses(self.items, self.final)
        # the streams stop at the last unit unless a loss needs the model's output (the items after it, e.g.
        # SAM's full-precision mask head, would only be computed and thrown away)
        needs_output = settings.pd_loss or settings.loss == "fisher"
        unit_items = [k for k, it in enumerate(self.items) if it.unit is not None or it.inner]
        self.run_until = len(self.items) - 1 if needs_output or not unit_items else unit_items[-1]
        # Hardened units get their rounded weights baked in; the full-precision stream needs the originals.
        self.fp_weights = {(op, role): w.detach().clone() for _, op in quant_ops(qmodel)
                           for role, w in op.weights().items()}
        self.acts = activation_quantizers(qmodel)
        self.dc_blocks = correction_blocks(fp_model, block_names(self.units)) if settings.dc else {}
        self.records: list[dict] = []
        self.policy: CachePolicy | None = None
        self.cache_bytes = 0
        self.segment: RecomputeSegment | None = None
        self._per_sample: dict[Any, int] | None = None

    # -- streams ---------------------------------------------------------------------------------
    def _choose_segment(self) -> "RecomputeSegment | None":
        """Return the recompute segment to use (see ``recon.recompute``), or None to cache every value."""
        start, mode = self.schedule.recompute_from, self.settings.recompute
        if start is None or mode is False:
            return None
        needs_all = self.settings.pd_loss or self.settings.loss == "fisher" or self.settings.dc
        if mode == "auto" and (needs_all or fits_on_device(self.device, self._estimate_cache_bytes())):
            return None
        return RecomputeSegment(self, start)

    def _estimate_cache_bytes(self, segment: "RecomputeSegment | None" = None) -> int:
        """Return the fp32 bytes of the two streams at their fullest, from one probe sample: the first sample
        of the largest calibration batch (an upper bound when samples differ in size, e.g. SAM's prompts)."""
        per_sample = self._probe_bytes()
        live = set(self.inputs)
        peak = 0
        end = segment.start if segment is not None else len(self.items)
        for i, item in enumerate(self.items[:end]):
            live |= set(item.outputs)
            peak = max(peak, sum(per_sample.get(n, 0) for n in live))
            live = {n for n in live if self.last_use.get(n, -1) > i}
        if segment is not None:  # the segment's entry values stay cached to its end
            peak = max(peak, sum(per_sample.get(n, 0) for n in segment.entry))
        return 2 * peak * self.num_samples

    def _probe_bytes(self) -> dict[Any, int]:
        """Return the fp32 bytes per sample of every value (one probe forward, made once)."""
        if self._per_sample is not None:
            return self._per_sample
        per_sample: dict[Any, int] = {}
        largest = max(range(len(self.batches)), key=lambda i: sum(t.numel() for t in self.batches[i]))
        batch, count = self.batches[largest], self.offsets[largest + 1] - self.offsets[largest]
        one_row_each = all(t.shape[0] == count for t in batch)
        # one row per sample: probe one sample; several (prompts of one image): the whole batch, per sample
        env = {key: (t[:1] if one_row_each else t) for key, t in zip(self.inputs, batch)}
        probe = 1 if one_row_each else count
        with torch.no_grad(), self.full_precision():
            for item in self.items[:self.run_until + 1]:
                for node, value in zip(item.outputs, item(*[env[n] for n in item.inputs])):
                    env[node] = value
                    if isinstance(value, torch.Tensor) and value.is_floating_point():
                        per_sample[node] = value.numel() * 4 // probe
        self._per_sample = per_sample
        return per_sample

    @contextmanager
    def full_precision(self, modules: set[nn.Module] | None = None) -> Iterator[None]:
        """Run the enclosed code with every quantizer off and the original full-precision weights (only
        among ``modules`` when given)."""
        keys = [key for key in self.fp_weights if modules is None or key[0] in modules]
        saved = {key: getattr(key[0], key[1]).data for key in keys}
        ops = {key[0]: key[0].quantize_weight for key in keys}
        acts = [q for q in self.acts if modules is None or q in modules]
        enabled = [q.enabled for q in acts]
        for op, role in keys:
            getattr(op, role).data = self.fp_weights[(op, role)]
            op.quantize_weight = False
        for q in acts:
            q.enabled = False
        try:
            yield
        finally:
            for (op, role), data in saved.items():
                getattr(op, role).data = data
            for op, flag in ops.items():
                op.quantize_weight = flag
            for q, flag in zip(acts, enabled):
                q.enabled = flag

    def tail(self, k: int) -> tuple[list[Item], set[Any]]:
        """Return the items after item ``k`` (the rest of the network) and the values they read that are
        produced before it, other than item ``k``'s output."""
        tail = self.items[k + 1:]
        produced = {n for it in tail for n in it.outputs} | set(self.items[k].outputs)
        return tail, {n for it in tail for n in it.inputs} - produced

    @property
    def tail_precision(self) -> str:
        """Return the precision the prediction-difference tail runs in: 'fp32', 'bf16' or 'fp16'."""
        mode = self.settings.pd_amp
        if mode == "auto":  # GPUs: bf16 autocast; CPUs: fp32 ('bf16' is faster where the CPU has AVX512-BF16)
            mode = "bf16" if self.device.type == "cuda" else "off"
        return "fp32" if mode == "off" else mode

    def _tail_autocast(self):
        mode = self.tail_precision
        if mode == "fp32":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if mode == "bf16" else torch.float16)

    def _forward_batch(self, model: nn.Module, batch: tuple) -> Any:
        """Run the whole model on one batch through its schedule (whatever its inputs)."""
        return run_items(self.items, dict(zip(self.inputs, batch)), self.final)

    def _new_value(self) -> CachedValue:
        return CachedValue(self.policy, self.offsets)

    def _run_item_over_set(self, item: Item, stream: dict[Any, CachedValue],
                           target: CachedValue | None = None, store: bool = True) -> float:
        """Run ``item`` on every calibration batch of ``stream`` (no autograd), store its outputs in the
        stream (unless ``store`` is False) and return the mean Lp loss to ``target`` (NaN without one)."""
        outs = {node: self._new_value() for node in item.outputs}
        dim = item.unit.loss_dim if item.unit is not None else 1
        total = 0.0
        with torch.no_grad():
            for i, b in enumerate(self.batches):
                lo, hi = self.offsets[i], self.offsets[i + 1]
                args = [stream[n].get(lo, hi, self.device, i) for n in item.inputs]
                for node, value in zip(item.outputs, item(*args)):
                    if store:
                        outs[node].put(lo, value)
                    if target is not None:
                        ref = target.get(lo, hi, self.device, i)
                        total += float(lp_loss(value.float(), ref, self.settings.p, dim=dim)) * (hi - lo)
        if store:
            stream.update(outs)
        return total / self.num_samples if target is not None else float("nan")

    def _free(self, streams: Sequence[dict], index: int) -> None:
        for stream in streams:
            for node in [n for n in stream if self.last_use.get(n, -1) <= index]:
                del stream[node]

    # -- checkpointing ---------------------------------------------------------------------------
    def _state_path(self) -> str | None:
        return os.path.join(self.work_dir, STATE_FILE) if self.work_dir else None

    def _save_state(self, stage: int, next_unit: int) -> None:
        path = self._state_path()
        if path is None or not self.settings.checkpoint_units:
            return
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        atomic_torch_save(path, {"format": "ptqvision.recon_state", "fingerprint": self.fingerprint,
                                 "stage": stage, "next_unit": next_unit, "state_dict": state,
                                 "records": json.dumps(self.records)})

    def _load_state(self) -> tuple[int, int]:
        """Return (stage, next unit) to continue from; (0, 0) when there is nothing to resume."""
        path = self._state_path()
        if not (self.resume and path and os.path.isfile(path)):
            return 0, 0
        payload = load_torch_file(path)
        if not isinstance(payload, dict) or payload.get("format") != "ptqvision.recon_state":
            raise CheckpointError(f"{path} is not a ptqvision reconstruction state")
        if payload.get("fingerprint") != self.fingerprint:
            LOG.info("resume: %s was made with other settings; starting the reconstruction afresh", path)
            return 0, 0
        self.model.load_state_dict(payload["state_dict"], strict=True)
        self.records = json.loads(payload["records"])
        LOG.info("resume: reconstruction continues at stage %d, unit %d", payload["stage"], payload["next_unit"])
        return int(payload["stage"]), int(payload["next_unit"])

    # -- main loop ---------------------------------------------------------------------------------
    def run(self) -> dict:
        """Reconstruct every unit in every stage; return a report (settings, cache, memory, per-unit losses)."""
        t0 = time.perf_counter()
        requires_grad = {p: p.requires_grad for p in self.model.parameters()}
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.segment = self._choose_segment()
        self.policy = choose_policy(self.settings.cache, self.device, self._estimate_cache_bytes(self.segment))
        LOG.info("reconstruction: %d units (%s partition), %d calibration images, cache %s",
                 len(self.units), self.settings.partition, self.num_samples, self.policy.describe())
        if self.segment is not None:
            LOG.info("recompute: the values from item %d on (%s) are produced per step from %d cached ones",
                     self.segment.start, self.items[self.segment.start].module, len(self.segment.entry))
        if self.settings.pd_loss:
            LOG.info("prediction difference: KL through the full-precision tail, T=%g, lambda_r=%g, tail in %s",
                     self.settings.pd_temperature, self.settings.pd_lambda, self.tail_precision)
        if self.dc_blocks:
            LOG.info("distribution correction on %d of %d units (the blocks with BatchNorm), lambda_c=%g, %d steps",
                     len(self.dc_blocks), len(self.units), self.settings.dc_lambda, self.settings.dc_iters)
        stages = stages_for(self.settings)
        start_stage, start_unit = self._load_state()
        try:
            for si, stage in enumerate(stages):
                if si < start_stage:
                    continue
                self._run_stage(si, stage, start_unit if si == start_stage else 0)
        finally:
            set_quant_state(self.model, True, True)
            for q in self.acts:
                q.drop_prob = 1.0
            for p, flag in requires_grad.items():
                p.requires_grad_(flag)
        report = {"units": len(self.units), "partition": self.settings.partition,
                  "stages": [s.name for s in stages], "cache": self.policy.describe(),
                  "recompute": self.segment is not None,
                  "cache_mib": round(self.cache_bytes / 2**20, 1), "memory": _peak_memory(self.device),
                  "time_s": round(time.perf_counter() - t0, 3), "per_unit": self.records}
        if self.settings.pd_loss:
            report["pd_tail_precision"] = self.tail_precision
        if self.work_dir:
            atomic_write_json(os.path.join(self.work_dir, RECORDS_FILE), report)
            write_loss_plot(self.records, os.path.join(self.work_dir, PLOT_FILE))
        return report

    def _run_stage(self, si: int, stage: Stage, first_unit: int) -> None:
        set_quant_state(self.model, True, stage.acts_on)
        if stage.name == "acts" and first_unit == 0:
            n = self.settings.stage2.init_samples
            calibrate_activations(self.model, _first_samples(self.batches, n), progress=False,
                                  forward=self._forward_batch)
            LOG.info("stage %s: activation ranges re-initialised on %d images behind the quantized weights",
                     stage.name, min(n, self.num_samples))
        fp: dict[Any, CachedValue] = {}
        for j, key in enumerate(self.inputs):
            fp[key] = CachedValue(self.policy, self.offsets)
            for i, b in enumerate(self.batches):
                fp[key].put(self.offsets[i], b[j])
        q: dict[Any, CachedValue] = dict(fp)
        need_logits = self.settings.loss == "fisher" or self.settings.pd_loss
        fp_logits = self._fp_logits() if need_logits and first_unit < len(self.units) else None
        unit_index = 0
        seg = self.segment
        for k, item in enumerate(self.items[:self.run_until + 1]):
            if seg is not None and k >= seg.start:  # nothing cached from here on: values produced per step
                if k == seg.start:
                    seg.bind(fp, q)
                sq, sfp = seg.streams(k)
                for unit in item.inner:
                    if unit_index >= first_unit:
                        sub = inner_item(unit)
                        sub_q, sub_fp = self._capture(item, unit, sq, sfp)
                        self._reconstruct(si, stage, unit_index, None, sub, sub_fp, sub_q, None)
                        self._unit_done(si, stage, unit_index, unit,
                                        self._run_item_over_set(sub, sub_q, sub_fp[sub.outputs[0]], store=False))
                    unit_index += 1
                if item.unit is not None:
                    if unit_index >= first_unit:
                        self._reconstruct(si, stage, unit_index, k, item, sfp, sq, None)
                        self._unit_done(si, stage, unit_index, item.unit,
                                        self._run_item_over_set(item, sq, sfp[item.outputs[0]], store=False))
                    unit_index += 1
                continue
            for unit in item.inner:  # layer units inside this piece: inputs and targets captured as it runs
                if unit_index >= first_unit:
                    sub = inner_item(unit)
                    sub_q, sub_fp = self._capture(item, unit, q, fp)
                    self._reconstruct(si, stage, unit_index, None, sub, sub_fp, sub_q, None)
                    loss = self._run_item_over_set(sub, sub_q, sub_fp[sub.outputs[0]], store=False)
                    self._unit_done(si, stage, unit_index, unit, loss)
                unit_index += 1
            with self.full_precision():
                self._run_item_over_set(item, fp)
            self.cache_bytes = max(self.cache_bytes, sum(v.nbytes for v in {**fp, **q}.values()))
            if item.unit is not None:
                if unit_index >= first_unit:
                    self._reconstruct(si, stage, unit_index, k, item, fp, q, fp_logits)
                unit_index += 1
            loss = self._run_item_over_set(item, q, fp[item.outputs[0]] if item.unit is not None else None)
            if item.unit is not None and unit_index - 1 >= first_unit and self.records:
                self._unit_done(si, stage, unit_index - 1, item.unit, loss)
            self._free((fp, q), k)
        self._save_state(si + 1, 0)

    def _unit_done(self, si: int, stage: Stage, index: int, unit: Any, loss: float) -> None:
        """Record the unit's loss after hardening, log it and checkpoint the state (resume from the next unit)."""
        self.records[-1]["loss_after"] = loss
        rec = self.records[-1]
        LOG.info("[%s %d/%d] %s %s: rec loss %.4g -> %.4g (%d iters, %.1fs)", stage.name, index + 1,
                 len(self.units), unit.kind, unit.name, rec["loss_before"], loss, rec["iters"], rec["time_s"])
        self._save_state(si, index + 1)

    def _capture(self, item: Item, unit: Any, q: dict, fp: dict) -> tuple[dict, dict]:
        """Run ``item`` over the calibration set on both streams and capture the input of the unit's op (both
        streams) and its full-precision output; return the (quantized, full-precision) streams of the unit."""
        op = unit.members[0]
        key_in, key_out = ("input", unit.name), ("output", unit.name)
        q_in, fp_in, fp_out = self._new_value(), self._new_value(), self._new_value()

        class _Stop(Exception):
            pass

        def run(stream: dict, x_value: CachedValue, y_value: CachedValue | None) -> None:
            for i, _ in enumerate(self.batches):
                lo, hi = self.offsets[i], self.offsets[i + 1]

                def pre(_m, args, _lo=lo):
                    x_value.put(_lo, args[0])

                def post(_m, _args, out, _lo=lo):
                    if y_value is not None:
                        y_value.put(_lo, out)
                    raise _Stop  # the rest of the piece is not needed

                handles = [op.register_forward_pre_hook(pre), op.register_forward_hook(post)]
                try:
                    with torch.no_grad():
                        item(*[stream[n].get(lo, hi, self.device, i) for n in item.inputs])
                except _Stop:
                    pass
                finally:
                    for h in handles:
                        h.remove()

        run(q, q_in, None)
        with self.full_precision():
            run(fp, fp_in, fp_out)
        return {key_in: q_in}, {key_in: fp_in, key_out: fp_out}

    def _fp_logits(self) -> CachedValue:
        out = CachedValue(self.policy, self.offsets)
        with torch.no_grad(), self.full_precision():
            for i, b in enumerate(self.batches):
                out.put(self.offsets[i], run_items(self.items, dict(zip(self.inputs, b)), self.final))
        return out

    def _fisher_grads(self, k: int, item: Item, fp: dict, q: dict, fp_logits: CachedValue) -> CachedValue:
        """Return g = ∂KL(fp logits ‖ quantized logits)/∂(unit output) per calibration sample, with the unit
        in full precision on its quantized input and the rest of the network as currently quantized."""
        grads = CachedValue(self.policy, self.offsets)
        tail, needed = self.tail(k)
        for i, _ in enumerate(self.batches):
            lo, hi = self.offsets[i], self.offsets[i + 1]
            with torch.no_grad(), self.full_precision():
                y = item(*[q[n].get(lo, hi, self.device, i) for n in item.inputs])[0]
            y = y.detach().requires_grad_(True)
            env = {n: q[n].get(lo, hi, self.device, i) for n in needed}
            env[item.outputs[0]] = y
            z = run_items(tail, env, self.final)
            loss = self.distance(fp_logits.get(lo, hi, self.device, i), z)
            (g,) = torch.autograd.grad(loss, y)
            grads.put(lo, g)
        return grads

    def _reinit_acts(self, item: Item, q: dict, acts: list, n: int) -> None:
        """Set the ranges of ``acts`` (the unit's) from the unit run on its first ``n`` quantized-stream inputs,
        behind the quantized prefix and the unit's quantized weights (PD-Quant)."""
        with torch.no_grad(), observing(acts):
            for i, _ in enumerate(self.batches):
                lo, hi = self.offsets[i], min(self.offsets[i + 1], n)
                if lo >= hi:
                    break
                item(*[q[node].get(lo, hi, self.device, i) for node in item.inputs])

    def _correct(self, item: Item, fp: dict) -> tuple[CachedValue, CachedValue, dict]:
        """Return the distribution-corrected input of block ``item``, the un-fused full-precision block's
        output on it (the new target) and a record; both are cached for the whole unit."""
        block, bns = self.dc_blocks[item.unit.name]
        s = self.settings
        x_new, y_new = self._new_value(), self._new_value()
        rows = []
        for i, _ in enumerate(self.batches):
            lo, hi = self.offsets[i], self.offsets[i + 1]
            x = fp[item.inputs[0]].get(lo, hi, self.device, i)
            xt, y, rec = correct_distribution(lambda t: block(t)[0], bns, x, s.dc_lambda, s.dc_iters, s.dc_lr,
                                              s.dc_patience, s.dc_min_lr)
            x_new.put(lo, xt)
            y_new.put(lo, y)
            rows.append((hi - lo, rec))
        n = self.num_samples
        record = {key: sum(b * r[key] for b, r in rows) / n for key in rows[0][1]}
        return x_new, y_new, record

    def _reconstruct(self, si: int, stage: Stage, index: int, k: int, item: Item, fp: dict, q: dict,
                     fp_logits: CachedValue | None) -> None:
        unit = item.unit
        t0 = time.perf_counter()
        s = self.settings
        torch.manual_seed(self.seed * 1000 + si * 100000 + index)  # per unit: identical after a resume
        layers, acts = unit_quantizers(item)
        acts = [a for a in acts if a.enabled]
        reinit_s = None
        if s.act_reinit_samples and stage.acts_on and acts:
            t_reinit = time.perf_counter()
            self._reinit_acts(item, q, acts, s.act_reinit_samples)
            reinit_s = round(time.perf_counter() - t_reinit, 3)
        target = fp[item.outputs[0]]
        loss_before = self._run_item_over_set(item, q, target, store=False)
        source = {n: fp[n] for n in item.inputs}  # what QDrop mixes with the quantized input
        dc_record = None
        if unit.name in self.dc_blocks:
            t_dc = time.perf_counter()
            source[item.inputs[0]], target, dc_record = self._correct(item, fp)
            dc_record["time_s"] = round(time.perf_counter() - t_dc, 3)
            LOG.info("  distribution correction of %s: BN-statistics loss %.4g -> %.4g, input shift %.4g (%.1fs)",
                     unit.name, dc_record["bn_loss_before"], dc_record["bn_loss_after"], dc_record["shift"],
                     dc_record["time_s"])
        weights = None
        if s.loss == "fisher":
            weights = self._fisher_grads(k, item, fp, q, fp_logits)
        rounders: list[tuple[Any, str, AdaRoundQuantizer]] = []
        if stage.learn_weights:
            for op in layers:
                for role, weight in op.weights().items():
                    rounders.append((op, role, AdaRoundQuantizer(op.quantizers()[role], weight)))
                    op.set_quantizer(role, rounders[-1][2])
        steps = [p for a in acts for p in a.learnable_steps()] if stage.learn_acts else []
        for p in steps:
            p.requires_grad_(True)
        for a in acts:
            a.drop_prob = stage.drop_prob
        optimizers, schedulers = [], []
        if rounders:
            optimizers.append(torch.optim.Adam([r.alpha for _, _, r in rounders], lr=s.weight_lr))
        if steps:
            opt = torch.optim.Adam(steps, lr=stage.act_lr)
            optimizers.append(opt)
            schedulers.append(torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(stage.iters, 1), eta_min=0.0))
        objective = UnitObjective(self, item, k, stage, q, source, target, weights, fp_logits if s.pd_loss else None)
        curve: list[list[float]] = []
        loop_s = 0.0
        try:
            if optimizers and stage.iters > 0:
                t_loop = time.perf_counter()
                with objective.tail_full_precision():
                    curve = self._optimise(objective, stage, [r for _, _, r in rounders], optimizers, schedulers)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                loop_s = time.perf_counter() - t_loop
        finally:
            for op, role, r in rounders:
                r.harden()
                weight = getattr(op, role)
                with torch.no_grad():
                    weight.copy_(r(weight))
                op.set_quantizer(role, r.base)
            for p in steps:
                p.requires_grad_(False)
                p.grad = None
            for a in acts:
                a.drop_prob = 1.0
        record = {"stage": stage.name, "index": index, "unit": unit.name, "kind": unit.kind,
                  "layers": len(layers), "iters": stage.iters if optimizers else 0,
                  "loss_before": loss_before, "loss_after": float("nan"),
                  "time_s": round(time.perf_counter() - t0, 3),
                  "it_per_s": round(stage.iters / loop_s, 2) if loop_s else None, "curve": curve}
        if reinit_s is not None:
            record["act_reinit_s"] = reinit_s
        if dc_record is not None:
            record["dc"] = dc_record
        self.records.append(record)

    def _optimise(self, objective: "UnitObjective", stage: Stage, rounders: list[AdaRoundQuantizer],
                  optimizers: list, schedulers: list) -> list[list[float]]:
        s = self.settings
        n, bs = self.num_samples, min(s.batch_size, self.num_samples)
        store = self.policy.device
        warm = s.warmup * stage.iters
        every = max(1, stage.iters // CURVE_POINTS)
        curve = []
        bar = tqdm(total=stage.iters, desc=f"{stage.name} {objective.item.unit.name}", disable=not self.progress,
                   leave=False, dynamic_ncols=True)
        round_loss = torch.zeros((), device=self.device)
        for it in range(stage.iters):
            idx = torch.randperm(n, device=store)[:bs]
            if s.chunk_rows:  # the batch's rows in chunks, gradients accumulated: the same step, bounded memory
                for opt in optimizers:
                    opt.zero_grad(set_to_none=True)
                rec, pd = objective.backward_in_chunks(idx, s.chunk_rows), None
                if rounders and it >= warm:
                    beta = beta_schedule(it, stage.iters, s.warmup, *s.beta)
                    round_loss = s.round_lambda * sum(r.regularizer(beta) for r in rounders)
                    round_loss.backward()
            else:
                rec, pd = objective(idx)
                loss = rec if pd is None else rec + pd
                if rounders and it >= warm:
                    beta = beta_schedule(it, stage.iters, s.warmup, *s.beta)
                    round_loss = s.round_lambda * sum(r.regularizer(beta) for r in rounders)
                    loss = loss + round_loss
                for opt in optimizers:
                    opt.zero_grad(set_to_none=True)
                loss.backward()
            for opt in optimizers:
                opt.step()
            for sch in schedulers:
                sch.step()
            if (it + 1) % every == 0 or it + 1 == stage.iters:  # the only host syncs of the loop
                r, g = float(rec.detach()), float(round_loss.detach())
                d = float(pd.detach()) if pd is not None else float("nan")
                curve.append([it + 1, r, g, d])
                post = {"rec": f"{r:.4g}", "round": f"{g:.4g}"}
                if pd is not None:
                    post["pd"] = f"{d:.4g}"
                bar.set_postfix(post, refresh=False)
                bar.update(it + 1 - bar.n)
        bar.close()
        return curve


class RecomputedValue:
    """A value inside the recompute segment, read like a :class:`CachedValue` but produced on demand."""

    nbytes = 0

    def __init__(self, segment: "RecomputeSegment", k: int, key: Any, stream: str) -> None:
        self.segment, self.k, self.key, self.stream = segment, k, key, stream

    def get(self, start: int, stop: int, device: torch.device, index: int) -> Any:
        return self.segment.values(self.k, self.stream, ("batch", index))[self.key]

    def gather(self, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
        return self.segment.values(self.k, self.stream, ("samples", tuple(idx.tolist())), idx)[self.key]


class RecomputeSegment:
    """The items from ``start`` on, run per step instead of cached: for unit k, the quantized stream's inputs
    come from running items start..k−1 (as quantized now) on the sampled samples' cached entry values, and
    the full-precision inputs and target from running items start..k in full precision. Items that consume no
    random numbers make this give exactly the values the cached streams would hold; each stream's values for
    the last request are kept, so the inputs, the mixing source and the target of one step cost one run each."""

    def __init__(self, engine: Reconstructor, start: int) -> None:
        self.engine, self.start = engine, start
        items = engine.items
        before = set(engine.inputs) | {n for it in items[:start] for n in it.outputs}
        self.entry = [n for n in dict.fromkeys(n for it in items[start:] for n in it.inputs) if n in before]
        self.fp: dict = {}
        self.q: dict = {}
        self._memo: dict[str, tuple] = {}

    def bind(self, fp: dict, q: dict) -> None:
        """Take the cached streams holding the entry values."""
        self.fp, self.q = fp, q
        self._memo.clear()

    def streams(self, k: int) -> tuple[dict, dict]:
        """Return (quantized, full-precision) streams of item ``k``'s inputs and outputs."""
        keys = list(self.engine.items[k].inputs) + list(self.engine.items[k].outputs)
        return ({n: RecomputedValue(self, k, n, "q") for n in keys},
                {n: RecomputedValue(self, k, n, "fp") for n in keys})

    def values(self, k: int, stream: str, request: tuple, idx: torch.Tensor | None = None) -> dict:
        """Return every value up to item ``k`` (its output too for the full-precision stream) for the batch or
        samples of ``request``."""
        memo = self._memo.get(stream)
        if memo is not None and memo[0] == (k, request):
            return memo[1]
        e, cached = self.engine, (self.q if stream == "q" else self.fp)
        if idx is None:
            i = request[1]
            lo, hi = e.offsets[i], e.offsets[i + 1]
            env = {n: cached[n].get(lo, hi, e.device, i) for n in self.entry}
        else:
            env = {n: cached[n].gather(idx, e.device) for n in self.entry}
        stop = k + 1 if stream == "fp" else k
        with torch.no_grad(), (e.full_precision() if stream == "fp" else nullcontext()):
            for item in e.items[self.start:stop]:
                for node, value in zip(item.outputs, item(*[env[n] for n in item.inputs])):
                    env[node] = value
        self._memo[stream] = ((k, request), env)
        return env


class UnitObjective:
    """The loss of one unit on one batch of calibration samples: the local Lp loss on the QDrop-mixed
    input (against the full-precision or distribution-corrected target), plus, for PD-Quant, the
    prediction difference of the purely quantized input's output through the full-precision tail.

    With drop active the mixed and the pure batches run through the unit together (one batch of 2B, as
    in PD-Quant); without drop they are the same batch and run once.
    """

    def __init__(self, engine: Reconstructor, item: Item, k: int | None, stage: Stage, q: dict, source: dict,
                 target: CachedValue, weights: CachedValue | None, fp_logits: CachedValue | None) -> None:
        self.engine = engine
        self.item = item
        self.stage = stage
        self.q, self.source, self.target, self.weights = q, source, target, weights
        self.mixed = [stage.drop_prob < 1.0 and source[n] is not q[n] for n in self.item.inputs]
        self.fp_logits = fp_logits
        self.tail, self.tail_inputs = engine.tail(k) if k is not None else ([], set())
        self.twin = fp_logits is not None and stage.drop_prob < 1.0

    def tail_full_precision(self):
        """Context: the tail's quantizers off and its original weights in (no-op without the PD loss)."""
        if self.fp_logits is None:
            return nullcontext()
        return self.engine.full_precision({m for it in self.tail for m in it.module.modules()})

    def _inputs(self, idx: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Return (QDrop-mixed inputs, purely quantized inputs) of the samples ``idx``."""
        dev = self.engine.device
        mixed, pure = [], []
        for node, mix in zip(self.item.inputs, self.mixed):
            xq = self.q[node].gather(idx, dev)
            pure.append(xq)
            if mix:  # QDrop: each element from the quantized or the full-precision (or corrected) input
                xf = self.source[node].gather(idx, dev)
                xq = drop_select(xf, xq, self.stage.drop_prob)
            mixed.append(xq)
        return mixed, pure

    def backward_in_chunks(self, idx: torch.Tensor, size: int) -> torch.Tensor:
        """Back-propagate the local loss of the samples ``idx`` in chunks of at most ``size`` rows of the unit's
        largest input (inputs with fewer rows, e.g. one image's keys shared by its prompts, go whole into
        every chunk; rows must be independent, as prompts and windows are); return the loss (detached).
        The gradients are those of the whole batch: each chunk's mean is weighted by its share of the rows."""
        dev = self.engine.device
        mixed, _ = self._inputs(idx)
        target = self.target.gather(idx, dev)
        weights = self.weights.gather(idx, dev) if self.weights is not None else None
        rows = max(t.shape[0] for t in mixed)
        if target.shape[0] != rows:
            raise ConfigError(f"recon.chunk_rows: unit {self.item.unit.name}'s output has {target.shape[0]} rows, its "
                              f"largest input {rows}; its rows cannot be split")
        total = torch.zeros((), device=dev)
        for a in range(0, rows, size):
            b = min(a + size, rows)
            out = self.item(*[t[a:b] if t.shape[0] == rows else t for t in mixed])[0]
            w = fisher_weight(weights[a:b]) if weights is not None else None
            rec = lp_loss(out, target[a:b], self.stage.p, w, dim=self.item.unit.loss_dim) * ((b - a) / rows)
            rec.backward()
            total += rec.detach()
        return total

    def __call__(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return (local loss, prediction-difference loss or None) for the samples ``idx``."""
        e, dev = self.engine, self.engine.device
        mixed, pure = self._inputs(idx)
        if self.twin:
            out = self.item(*[torch.cat([a, b]) for a, b in zip(mixed, pure)])[0]
            local, pure_out = out.split(idx.numel())  # one backward (a cat), not two zero-filled slices
        else:
            local = pure_out = self.item(*mixed)[0]
        w = fisher_weight(self.weights.gather(idx, dev)) if self.weights is not None else None
        rec = lp_loss(local, self.target.gather(idx, dev), self.stage.p, w, dim=self.item.unit.loss_dim)
        if self.fp_logits is None:
            return rec, None
        env = {n: self.q[n].gather(idx, dev) for n in self.tail_inputs}
        env[self.item.outputs[0]] = pure_out
        with e._tail_autocast():
            z = run_items(self.tail, env, e.final)
        s = e.settings
        return rec, e.distance(self.fp_logits.gather(idx, dev), z.float(), s.pd_temperature) / s.pd_lambda


def _first_samples(batches: Sequence[tuple], n: int) -> list[tuple]:
    out, left = [], n
    for b in batches:
        if left <= 0:
            break
        out.append(tuple(t[:left] for t in b))
        left -= out[-1][0].shape[0]
    return out


def write_loss_plot(records: list[dict], path: str) -> None:
    """Write a two-panel PNG: per-unit loss before/after, and the training curves of every unit."""
    if not records:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    for stage in dict.fromkeys(r["stage"] for r in records):
        rows = [r for r in records if r["stage"] == stage]
        x = [r["index"] for r in rows]
        ax1.plot(x, [max(r["loss_before"], 1e-12) for r in rows], "o--", ms=3, label=f"{stage}: before (RTN)")
        ax1.plot(x, [max(r["loss_after"], 1e-12) if math.isfinite(r["loss_after"]) else float("nan")
                     for r in rows], "o-", ms=3, label=f"{stage}: after")
        for r in rows:
            if r["curve"]:
                c = list(zip(*r["curve"]))
                ax2.plot(c[0], [max(v, 1e-12) for v in c[1]], lw=0.8, alpha=0.7)
    ax1.set(yscale="log", xlabel="unit", ylabel="reconstruction loss (all calibration images)",
            title="per unit: before and after")
    ax1.legend(fontsize=8)
    ax2.set(yscale="log", xlabel="iteration", ylabel="reconstruction loss (batch)", title="training curves")
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def block_names(units: Sequence) -> list[str]:
    return [u.name for u in units if u.kind == "block"]


def describe_partition(schedule: Schedule, settings: ReconSettings, fp_model: nn.Module | None = None) -> str:
    """Return the partition table the engine will use (for the dry run); with distribution correction on,
    check that it applies (ConfigError otherwise) and say to which blocks."""
    units = schedule.units
    table = partition_table(schedule)
    if settings.dc:
        blocks = correction_blocks(fp_model, block_names(units))
        table += f"\ndistribution correction: {len(blocks)} of {len(block_names(units))} blocks (those with BatchNorm)"
    return table


def reconstruct(qmodel: nn.Module, batches: Sequence[Any], settings: ReconSettings | dict,
                device: torch.device | str, **kwargs: Any) -> dict:
    """Reconstruct ``qmodel`` in place on ``batches``; return the report (see :class:`Reconstructor`).

    ``settings``: a :class:`ReconSettings` or a dict of ``recon.*`` keys (missing ones take their defaults).
    ``schedule`` (keyword): the units and items to run; by default the model's adapter builds it.
    """
    if not isinstance(settings, ReconSettings):
        settings = ReconSettings.from_dict(settings)
    return Reconstructor(qmodel, batches, settings, torch.device(device), **kwargs).run()
