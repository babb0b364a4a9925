"""Images per second of SAM's automatic mask generator (the mask proposals of task sam_semantic), full precision and
fake-quantized, on SAM-B with random weights.

The path is the task's own: segment-anything's ``SamAutomaticMaskGenerator`` running a ptqvision ``SamBoxModel``
through ``SamPredictorView`` (ptqvision/eval/sam_semantic.py ``mask_generator``): per image the encoder runs once
(``set_image``), then the ``points_per_side``² point prompts go through the prompt encoder and the mask decoder in
batches of ``points_per_batch`` (one decoder call per batch, three masks per prompt, upsampled to the image), then
segment-anything's filters (predicted IoU, stability), box NMS and the binary masks. The fake-quantized model is
PTQ4SAM's placement (configs/_base_/quant/sam_default.py with AGQ, W4A4 by default; Bimodal Integration off: it
changes no cost), its ranges calibrated on one random image with a 4x4 point grid (a cheaper AGQ search than the
task's, which changes no cost of the forward). The quantized decoder takes the image's keys once per batch and
broadcasts them over the prompts (segment-anything's FP decoder repeats them per prompt).

Random weights and random-noise images: the speed of the model does not depend on the values, but the work after
the decoder does, through how many masks pass the filters. ``--filters sam`` uses segment-anything's thresholds
(predicted IoU 0.88, stability 0.95: random weights pass almost none, a lower bound of that work), ``--filters none``
keeps every mask (thresholds 0: an upper bound); both are recorded with the masks kept. Times per image: the
encoder (``set_image``), the prompt batches (``predict_torch``: prompt encoder, decoder, mask upsampling) and the
rest (filters, NMS, masks), after ``--warmup`` images; CUDA times are synchronised.

    OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE python benchmarks/amg_speed.py           # CPU: SAM-B, 1024 px, 32x32
    python benchmarks/amg_speed.py --device cuda --images 10 --warmup 2                # on a GPU
    OMP_NUM_THREADS=1 python benchmarks/amg_speed.py --images 1 --warmup 0 --points-per-side 4 --no-save  # a check

Writes ``benchmarks/results/issue12/amg_speed.json`` (``amg_speed_cuda.json`` on a GPU) unless ``--no-save``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
RESULTS = os.path.join(ROOT, "benchmarks", "results", "issue12")
LABEL = "SAM's architecture with random weights on random-noise images: speed only, no accuracy"
FILTERS = {"sam": {"pred_iou_thresh": 0.88, "stability_score_thresh": 0.95},
           "none": {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}}


def build(name: str, mode: str, device: str, w_bits: int, a_bits: int):
    """Return the full-precision or fake-quantized (calibrated, ready for evaluation) SamBoxModel on ``device``."""
    import torch

    import ptqvision  # noqa: F401
    from ptqvision.models import build_model
    from ptqvision.models.sam_adapter import SamAdapter
    from ptqvision.nn import QuantConfig, check_ready
    from ptqvision.quant import Log2Quantizer

    torch.manual_seed(0)
    model, _ = build_model(dict(type="sam", name=name, weights="random"))
    if mode == "fp":
        return model.to(device).eval()
    adapter = SamAdapter()
    quant = dict(w_bits=w_bits, a_bits=a_bits, head_stem_8bit=False, softmax="agq", bimodal_integration=False,
                 w_observer="lp", a_observer="avg_minmax")
    twin = adapter.quantize(model, QuantConfig(**quant)).to(device)
    del model
    for m in twin.modules():
        if isinstance(m, Log2Quantizer):
            m.search_kwargs.update(evals=12, max_rows=512)
    from segment_anything.utils.amg import build_point_grid

    g = torch.Generator().manual_seed(0)
    size = twin.image_size
    image = torch.randn(1, 3, size, size, generator=g).to(device)
    points = (torch.from_numpy(build_point_grid(4)).float() * size).to(device)
    adapter.calibrate(twin, [(image, points)], torch.device(device), progress=False)
    check_ready(twin)
    return twin.eval()


def measure(model, args, filters: str) -> dict:
    """Return images per second and the time split of the mask generator over ``args.images`` images."""
    import numpy as np
    import torch

    from ptqvision.eval.sam_semantic import MaskGeneratorSettings, mask_generator

    settings = MaskGeneratorSettings(points_per_side=args.points_per_side, points_per_batch=args.points_per_batch,
                                     **FILTERS[filters])
    amg = mask_generator(model, settings)
    cuda = args.device.startswith("cuda")
    spent = {"set_image": 0.0, "predict_torch": 0.0}
    calls = {"set_image": 0, "predict_torch": 0}

    def timed(name, fn):
        def run(*a, **k):
            if cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            out = fn(*a, **k)
            if cuda:
                torch.cuda.synchronize()
            spent[name] += time.perf_counter() - t
            calls[name] += 1
            return out
        return run

    for name in spent:
        setattr(amg.predictor, name, timed(name, getattr(amg.predictor, name)))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
              for _ in range(args.warmup + args.images)]
    per_image, split, kept = [], [], []
    for i, rgb in enumerate(images):
        for name in spent:
            spent[name] = 0.0
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        masks = amg.generate(rgb)
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - t
        if i >= args.warmup:
            per_image.append(wall)
            split.append({"encoder_s": spent["set_image"], "prompt_batches_s": spent["predict_torch"],
                          "rest_s": wall - spent["set_image"] - spent["predict_torch"]})
            kept.append(len(masks))
    mean = statistics.mean(per_image)
    return {"filters": filters, **FILTERS[filters], "images": len(per_image), "images_per_s": round(1 / mean, 4),
            "s_per_image": [round(x, 3) for x in per_image], "median_s_per_image": round(statistics.median(per_image), 3),
            **{k: round(statistics.mean(s[k] for s in split), 3) for k in split[0]},
            "decoder_calls_per_image": calls["predict_torch"] // (args.warmup + args.images),
            "masks_kept_per_image": round(statistics.mean(kept), 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="sam_vit_b", help="sam_vit_b (default), sam_vit_l, sam_vit_h, sam_tiny")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--modes", nargs="+", default=["fp", "quant"], choices=["fp", "quant"])
    p.add_argument("--filters", nargs="+", default=["sam", "none"], choices=list(FILTERS))
    p.add_argument("--images", type=int, default=2, help="timed images per setting")
    p.add_argument("--warmup", type=int, default=1, help="untimed images first")
    p.add_argument("--height", type=int, default=1024, help="image height (SAM resizes the longest side to 1024)")
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--points-per-side", type=int, default=32)
    p.add_argument("--points-per-batch", type=int, default=64, help="point prompts per decoder call")
    p.add_argument("--w-bits", type=int, default=4)
    p.add_argument("--a-bits", type=int, default=4)
    p.add_argument("--no-save", action="store_true", help="print only (for a quick check)")
    args = p.parse_args(argv)

    import torch

    from ptqvision.runner import versions
    from ptqvision.utils.io import atomic_write_json

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available")
    rows = []
    for mode in args.modes:
        t = time.perf_counter()
        model = build(args.model, mode, args.device, args.w_bits, args.a_bits)
        setup = time.perf_counter() - t
        for filters in args.filters:
            with torch.no_grad():
                row = {"mode": mode if mode == "fp" else f"fake-quantized W{args.w_bits}A{args.a_bits} (ptq4sam placement, AGQ)",
                       "setup_s": round(setup, 1), **measure(model, args, filters)}
            print(json.dumps(row), flush=True)
            rows.append(row)
        del model
    device = args.device if not args.device.startswith("cuda") else f"{args.device} ({torch.cuda.get_device_name()})"
    out = {"label": LABEL, "model": args.model, "device": device, "threads": torch.get_num_threads(),
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "cpu": platform.processor() or platform.machine(),
           "image": [args.height, args.width], "points_per_side": args.points_per_side,
           "points_per_batch": args.points_per_batch, "load_after": [round(x, 2) for x in os.getloadavg()],
           "command": "python benchmarks/amg_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "rows": rows, "versions": versions()}
    if not args.no_save:
        name = "amg_speed.json" if not args.device.startswith("cuda") else "amg_speed_cuda.json"
        os.makedirs(RESULTS, exist_ok=True)
        atomic_write_json(os.path.join(RESULTS, name), out)
    print("| model | filters | images/s | s/image | encoder (s) | prompt batches (s) | rest (s) | masks kept |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['filters']} | {r['images_per_s']:.3f} | {r['median_s_per_image']:.2f} | "
              f"{r['encoder_s']:.2f} | {r['prompt_batches_s']:.2f} | {r['rest_s']:.2f} | {r['masks_kept_per_image']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
