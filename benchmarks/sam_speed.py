"""SAM's reconstruction speed and memory: SAM-B units on this machine, the cache for 32 images, SAM-H with 300 boxes.

Random weights (segment-anything's real architectures, built by ``build_model(..., weights='random')``; the speed
and the memory do not depend on the values), random 1024×1024 images and random boxes. PTQ4SAM's placement
(``configs/_base_/quant/sam_default.py`` with AGQ), W4A4, its joint stage (AdaRound + LSQ steps, drop 0.5),
batch = one image with all its prompts. Each measurement runs in a child process of its own.

Parts (``--parts``):

- ``speed``: iterations per second of SAM-B units through the engine (an encoder windowed attention, an encoder
  global attention, an encoder MLP and decoder attentions), each the only unit of a schedule cut after it
  (every other unit runs as calibrated; as in benchmarks/vit_speed.py), on ``--images`` calibration images
  with ``--boxes`` boxes each; the ranges are calibrated on the first image with a cheaper AGQ search
  (``--agq-evals``, ``--agq-rows``), which changes no cost of the loop. Also the cache the run held.
- ``cache``: the engine's own estimate of the two streams for 32 calibration images (``Reconstructor``'s probe of
  one image, the same code that picks the cache placement), for SAM-B and SAM-H with 16, 100 and 300 boxes per
  image, caching everything or recomputing the decoder per step (``recon.recompute``).
- ``step``: the working set of one optimisation step (forward, backward, Adam) of the largest units of SAM-H:
  an encoder global attention (16 heads × 4096 × 4096 maps) and a decoder image-to-token attention with 300
  prompts, with and without ``recon.chunk_rows``; measured as the rise of the process's peak RSS over a few
  steps (Linux: VmHWM reset through /proc/self/clear_refs), a CPU proxy of the device memory a GPU step needs.

    OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE python benchmarks/sam_speed.py            # CPU, all parts
    python benchmarks/sam_speed.py --device cuda --parts speed step --iters 200         # on a GPU
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
RESULTS = os.path.join(ROOT, "benchmarks", "results", "issue11")
QUANT = dict(w_bits=4, a_bits=4, head_stem_8bit=False, softmax="agq", bimodal_integration=False,
             w_observer="lp", a_observer="avg_minmax")
SPEED_UNITS = {
    "encoder_window_attn": ("image_encoder.blocks.0.attn", "encoder attention, windowed (25 windows of 14x14)"),
    "encoder_global_attn": ("image_encoder.blocks.2.attn", "encoder attention, global (4096 tokens)"),
    "encoder_mlp": ("image_encoder.blocks.0.mlp", "encoder MLP (4096 tokens, 768 -> 3072 -> 768)"),
    "decoder_t2i": ("mask_decoder.transformer.layers.1.cross_attn_token_to_image", "decoder token-to-image attention"),
    "decoder_i2t": ("mask_decoder.transformer.layers.1.cross_attn_image_to_token", "decoder image-to-token attention"),
}


def _setup(name: str, device: str, images: int, boxes: int, agq_evals: int, agq_rows: int, calibrate: bool = True):
    """Return (twin, adapter, calibration batches) of a random-weight SAM, calibrated on the first image."""
    import ptqvision  # noqa: F401
    import torch

    from ptqvision.models import build_model
    from ptqvision.models.sam_adapter import SamAdapter
    from ptqvision.nn import QuantConfig
    from ptqvision.quant import Log2Quantizer

    torch.manual_seed(0)
    model, _ = build_model(dict(type="sam", name=name, weights="random"))
    adapter = SamAdapter()
    twin = adapter.quantize(model, QuantConfig(**QUANT)).to(device)
    del model
    for m in twin.modules():
        if isinstance(m, Log2Quantizer):
            m.search_kwargs.update(evals=agq_evals, max_rows=agq_rows)
    g = torch.Generator().manual_seed(0)
    data = []
    for _ in range(images):
        xy = torch.rand(boxes, 2, generator=g) * 700
        wh = torch.rand(boxes, 2, generator=g) * 300 + 16
        data.append((torch.randn(1, 3, 1024, 1024, generator=g).to(device), torch.cat([xy, xy + wh], 1).to(device)))
    if calibrate:
        adapter.calibrate(twin, data[:1], torch.device(device), progress=False)
    return twin, adapter, data


def one_unit_schedule(schedule, unit_name: str):
    """Return ``schedule`` cut after unit ``unit_name`` (the only unit left) and that unit's item."""
    from ptqvision.models.schedule import Item, Schedule

    items = []
    for it in schedule.items:
        keep = it.unit is not None and it.unit.name == unit_name
        items.append(it if keep else Item(it.module, it.inputs, it.outputs, None))
        if keep:
            return Schedule(items, schedule.inputs, items[-1].outputs[0], schedule.recompute_from), items[-1]
    raise SystemExit(f"unit {unit_name!r} not in the schedule")


def measure_speed(key: str, args) -> dict:
    import torch

    from ptqvision.methods import PRESETS
    from ptqvision.recon import ReconSettings, reconstruct

    t0 = time.perf_counter()
    twin, adapter, data = _setup("sam_vit_b", args.device, args.images, args.boxes, args.agq_evals, args.agq_rows)
    setup_s = time.perf_counter() - t0
    unit_name, what = SPEED_UNITS[key]
    schedule, item = one_unit_schedule(adapter.schedule(twin), unit_name)
    stamps: list[float] = []
    handle = item.module.register_forward_pre_hook(
        lambda _m, _a: stamps.append(time.perf_counter()) if torch.is_grad_enabled() else None)
    settings = {**ReconSettings.defaults(), **PRESETS["ptq4sam"], "iters": args.iters, "batch_size": 1,
                "weight_lr": 1e-2, "recompute": args.recompute, "checkpoint_units": False}
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    report = reconstruct(twin, data, settings, args.device, schedule=schedule, progress=False)
    wall = time.perf_counter() - t
    handle.remove()
    (rec,) = report["per_unit"]
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    return {"unit": key, "name": unit_name, "what": what, "iters": rec["iters"], "it_per_s": rec["it_per_s"],
            "ms_per_it": round(1000 / rec["it_per_s"], 1) if rec["it_per_s"] else None,
            "median_ms_per_it": round(1000 * statistics.median(steps), 1) if steps else None,
            "cache": report["cache"], "cache_mib": report["cache_mib"], "recompute": report["recompute"],
            "memory": report["memory"], "setup_s": round(setup_s, 1), "reconstruct_wall_s": round(wall, 1),
            "images": args.images, "boxes_per_image": args.boxes}


def measure_cache(name: str, boxes: int, args) -> dict:
    """The engine's estimate of the streams for 32 images of ``boxes`` boxes, caching all or recomputing."""
    from ptqvision.recon import ReconSettings
    from ptqvision.recon.engine import RecomputeSegment, Reconstructor

    twin, adapter, data = _setup(name, args.device, 1, boxes, args.agq_evals, args.agq_rows, calibrate=False)
    schedule = adapter.schedule(twin)
    settings = ReconSettings.from_dict({**ReconSettings.defaults(), "partition": "sub_block", "joint": True,
                                        "skip_first_layer": False, "drop_prob": 0.5})
    engine = Reconstructor(twin, data * 32, settings, args.device, schedule=schedule, progress=False)
    from ptqvision.nn.calibrate import quantization_off

    with quantization_off(twin):  # the probe runs the model in full precision: no calibration needed
        full = engine._estimate_cache_bytes()
        seg = engine._estimate_cache_bytes(RecomputeSegment(engine, schedule.recompute_from))
    per = engine._probe_bytes()
    keys = max((v for k, v in per.items() if k.startswith("k") and k[1:].isdigit()), default=0)
    return {"model": name, "boxes_per_image": boxes, "images": 32,
            "cache_all_gib_fp32": round(full / 2**30, 2), "cache_all_gib_fp16": round(full / 2**31, 2),
            "cache_recompute_gib_fp32": round(seg / 2**30, 3),
            "decoder_keys_per_image_mib": round(keys / 2**20, 1)}


def _mem_available_gib() -> float:
    """Return the machine's available memory (MemAvailable of /proc/meminfo) in GiB."""
    with open("/proc/meminfo") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:"))
    return round(kib / 2**20, 2)


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+)", f.read(), re.M).group(1))


def measure_step(unit: str, chunk: int | None, args) -> dict:
    """Peak working set of a few optimisation steps of one SAM-H unit on random inputs (CPU proxy)."""
    import torch

    from ptqvision.methods import PRESETS
    from ptqvision.models.schedule import Item, Schedule, Unit
    from ptqvision.nn.calibrate import observing
    from ptqvision.recon import ReconSettings, reconstruct
    from ptqvision.models.schedule import unit_quantizers

    twin, adapter, _ = _setup("sam_vit_h", args.device, 1, 1, args.agq_evals, args.agq_rows, calibrate=False)
    by_name = {it.unit.name: it for it in adapter.schedule(twin).items if it.unit is not None}
    g = torch.Generator().manual_seed(0)
    if unit == "encoder_global_attn":
        item = by_name["image_encoder.blocks.7.attn"]
        inputs = [torch.randn(1, 64, 64, 1280, generator=g)]
    else:
        item = by_name["mask_decoder.transformer.layers.1.cross_attn_image_to_token"]
        p = args.step_boxes
        inputs = [torch.randn(p, 7, 256, generator=g), torch.randn(p, 4096, 256, generator=g),
                  torch.randn(p, 7, 256, generator=g)]
    _, acts = unit_quantizers(item)
    for op in [m for m in item.module.modules() if hasattr(m, "weight_quantizer")]:
        op.weight_quantizer.calibrate_from(op.weight)
    with torch.no_grad(), observing(acts):
        item(*inputs)
    # one sample (an image: the engine counts samples by the rows of the first input, here a one-row anchor
    # the unit does not read) whose rows are its prompts, as the engine holds the decoder's values
    names = [f"in{i}" for i in range(len(inputs))]
    sched = Schedule([Item(item.module, names, ["out"], Unit(item.unit.name, "sub_block", loss_dim=-1))],
                     ["image"] + names, "out")
    settings = {**ReconSettings.defaults(), **PRESETS["ptq4sam"], "iters": args.step_iters, "batch_size": 1,
                "chunk_rows": chunk, "checkpoint_units": False}
    batches = [(torch.zeros(1),) + tuple(inputs)]
    before = _rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS to the current RSS
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    report = reconstruct(twin, batches, settings, args.device, schedule=sched, progress=False)
    wall = time.perf_counter() - t
    peak = _rss_kib("VmHWM")
    device_peak = (round(torch.cuda.max_memory_allocated() / 2**30, 2) if args.device.startswith("cuda") else None)
    (rec,) = report["per_unit"]
    return {"model": "sam_vit_h", "unit": item.unit.name, "chunk_rows": chunk,
            "rows": inputs[0].shape[0] if unit != "encoder_global_attn" else 1,
            "input_shapes": [list(t.shape) for t in inputs], "iters": rec["iters"],
            "s_per_it": round(wall / max(rec["iters"], 1), 2), "cache_gib": round(report["cache_mib"] / 1024, 2),
            "working_set_gib": round((peak - before) / 2**20, 2), "rss_before_gib": round(before / 2**20, 2),
            "device_peak_allocated_gib": device_peak}


def save(args, rows: dict, t0: float) -> None:
    """Write what was measured so far (after every job, so that a cut run keeps its rows)."""
    from ptqvision.utils.atomic import atomic_write_json

    atomic_write_json(args.out, {
        "what": "PTQ4SAM joint stage, W4A4, random weights and inputs; see benchmarks/sam_speed.py",
        "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]), "device": args.device,
        "threads": args.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_avg_after": [round(x, 2) for x in os.getloadavg()], "total_wall_s": round(time.perf_counter() - t0, 1),
        **rows})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--parts", nargs="+", default=["speed", "cache", "step"], choices=["speed", "cache", "step"])
    p.add_argument("--units", nargs="+", default=list(SPEED_UNITS), choices=list(SPEED_UNITS))
    p.add_argument("--iters", type=int, default=20, help="loop iterations per unit (speed)")
    p.add_argument("--images", type=int, default=2, help="calibration images (speed)")
    p.add_argument("--boxes", type=int, default=16, help="boxes per image (speed)")
    p.add_argument("--recompute", default="auto", help="recon.recompute for the speed part (auto, true, false)")
    p.add_argument("--step-boxes", type=int, default=300, help="prompts of the decoder unit (step)")
    p.add_argument("--step-iters", type=int, default=2, help="optimisation steps (step)")
    p.add_argument("--chunks", nargs="+", default=["none", "32"],
                   help="recon.chunk_rows of the decoder unit in the step part ('none': the whole step at once)")
    p.add_argument("--cache-models", nargs="+", default=["sam_vit_b", "sam_vit_h"], help="models of the cache part")
    p.add_argument("--cache-boxes", nargs="+", type=int, default=[16, 100, 300], help="boxes per image (cache)")
    p.add_argument("--step-units", nargs="+", default=["encoder_global_attn", "decoder_i2t"],
                   choices=["encoder_global_attn", "decoder_i2t"], help="units of the step part")
    p.add_argument("--agq-evals", type=int, default=12)
    p.add_argument("--agq-rows", type=int, default=512)
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    p.add_argument("--out", default=os.path.join(RESULTS, "sam_speed.json"))
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.recompute in ("true", "false"):
        args.recompute = args.recompute == "true"

    if args.worker:
        import torch

        from ptqvision.utils.runtime import tune_cpu_allocator

        tune_cpu_allocator()
        torch.set_num_threads(args.threads)
        kind, *rest = args.worker
        if kind == "speed":
            row = measure_speed(rest[0], args)
        elif kind == "cache":
            row = measure_cache(rest[0], int(rest[1]), args)
        else:
            row = measure_step(rest[0], None if rest[1] == "none" else int(rest[1]), args)
        row["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(row))
        return

    jobs = []
    if "speed" in args.parts:
        jobs += [("speed", u) for u in args.units]
    if "cache" in args.parts:
        jobs += [("cache", m, str(b)) for m in args.cache_models for b in args.cache_boxes]
    if "step" in args.parts:
        jobs += [("step", "encoder_global_attn", "none")] if "encoder_global_attn" in args.step_units else []
        jobs += [("step", "decoder_i2t", c) for c in args.chunks] if "decoder_i2t" in args.step_units else []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    passthrough = ["--device", args.device, "--iters", str(args.iters), "--images", str(args.images), "--boxes",
                   str(args.boxes), "--recompute", str(args.recompute).lower(), "--step-boxes", str(args.step_boxes),
                   "--step-iters", str(args.step_iters), "--agq-evals", str(args.agq_evals), "--agq-rows",
                   str(args.agq_rows), "--threads", str(args.threads)]
    rows: dict[str, list] = {"speed": [], "cache": [], "step": []}
    t0 = time.perf_counter()
    for job in jobs:
        t = time.perf_counter()
        mem_available_gib = _mem_available_gib()
        out = subprocess.run([sys.executable, os.path.abspath(__file__), *passthrough, "--worker", *job], env=env,
                             cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            sys.stderr.write(out.stdout[-3000:] + out.stderr[-3000:])
            if job[0] != "step":
                raise SystemExit(f"{' '.join(job)} failed (exit {out.returncode})")
            # a step that does not fit is a result: the process was killed (SIGKILL: out of memory)
            print(f"{' '.join(job)} failed (exit {out.returncode})", file=sys.stderr, flush=True)
            rows["step"].append({"unit": job[1], "chunk_rows": None if job[2] == "none" else int(job[2]),
                                 "failed": f"exit {out.returncode}" + (" (killed: out of memory)" if out.returncode == -9 else ""),
                                 "mem_available_gib_at_start": mem_available_gib,
                                 "process_wall_s": round(time.perf_counter() - t, 1)})
            save(args, rows, t0)
            continue
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["process_wall_s"] = round(time.perf_counter() - t, 1)
        rows[job[0]].append(row)
        print(f"{' '.join(job)}: {json.dumps(row)}", file=sys.stderr, flush=True)
        save(args, rows, t0)
    if rows["speed"]:
        print(f"\nSAM-B units, {args.images} images x {args.boxes} boxes, {args.iters} iterations, {args.device}, "
              f"{args.threads} threads\n\n| unit | it/s | ms/it (median) | cache (MiB) | peak RSS (MiB) |\n|---|---|---|---|---|")
        for r in rows["speed"]:
            print(f"| {r['name']} ({r['what']}) | {r['it_per_s']} | {r['ms_per_it']} ({r['median_ms_per_it']}) | "
                  f"{r['cache_mib']} ({r['cache']}{', recompute' if r['recompute'] else ''}) | {r['peak_rss_mib']} |")
    if rows["cache"]:
        print("\nStreams for 32 images (engine estimate)\n\n| model | boxes/image | all cached, fp32 (GiB) | fp16 | "
              "decoder recomputed, fp32 (GiB) |\n|---|---|---|---|---|")
        for r in rows["cache"]:
            print(f"| {r['model']} | {r['boxes_per_image']} | {r['cache_all_gib_fp32']} | {r['cache_all_gib_fp16']} | "
                  f"{r['cache_recompute_gib_fp32']} |")
    if rows["step"]:
        print("\nOne optimisation step of SAM-H's largest units (CPU peak-RSS rise)\n\n| unit | rows | chunk_rows | "
              "whole call (GiB) | of which the cached inputs and target (GiB) | s/it |\n|---|---|---|---|---|---|")
        for r in rows["step"]:
            if "failed" in r:
                print(f"| {r['unit']} | {args.step_boxes} | {r['chunk_rows']} | did not fit: {r['failed']}, "
                      f"{r['mem_available_gib_at_start']} GiB available | | |")
                continue
            print(f"| {r['unit']} | {r['rows']} | {r['chunk_rows']} | {r['working_set_gib']} | {r['cache_gib']} | "
                  f"{r['s_per_it']} |")
    print(f"\nwritten to {os.path.relpath(args.out, ROOT)}")


if __name__ == "__main__":
    main()
