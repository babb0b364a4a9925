"""Accuracy grid on the MNIST toy ViT: methods × bits, and placement ablations at W4A4 and W3A3.

The model is the MNIST toy ViT of configs/_base_/models/vit_mnist_tiny.py (real weights trained on
MNIST, 17 tokens, width 64, 6 blocks of 8 heads): NOT an ImageNet result. Every cell is one run of
``tools/quant.py`` on the demo config with ``--cfg-options``, launched by the sweep machinery
(``ptqvision.sweep``) in benchmarks/out/vit_grid/<cell>/; the budget is the demo's
(256 calibration digits, 200 iterations per unit, batch 32, AdaRound lr 1e-2), set explicitly on every
reconstruction cell so that a method's own demo config cannot change it; evaluation on the 2500
held-out digits of the demo set.

Rows (the placement is set explicitly in every cell: softmax, attn_granularity, ln_reparam):
    rtn        RTN, uniform softmax                          (W8A8 W6A6 W4A4 W3A3)
    repqvit    RepQ-ViT: LayerNorm reparameterisation + log√2 softmax
    qdrop      QDrop (AdaRound + LSQ + drop 0.5), AGQ softmax (the demo's placement)
    pdquant    PD-Quant without distribution correction (the ViT has no BatchNorm), AGQ softmax
Ablations at W4A4 and W3A3, for RTN and QDrop, one change from the base placement (AGQ softmax,
per-tensor q/k/v, no reparameterisation):
    sm_uniform sm_log2 sm_log_sqrt2 sm_agq    softmax quantizer
    head                                        q, k, v ranges per head (quant.attn_granularity=head)
    reparam                                     LayerNorm reparameterisation on (quant.ln_reparam=True)

Cells are named ``<method>_w<b>a<b>`` and ``<method>_<ablation>_w<b>a<b>``; an ablation equal to a method
row (RTN's uniform softmax, QDrop's AGQ base) is that row's cell, so the grid has 36 cells. A cell that
finished with the same resolved config is skipped, an interrupted one resumes;
``--cells`` runs only the cells whose name matches one of the given fnmatch patterns (``--list`` shows
them). ``--attention`` measures the full-precision attention maps, the error of each softmax quantizer
alone and RTN's error budget per group of quantizers; ``--kl`` adds KL(FP || quantized) to every cell.
The tables come from the report machinery (``ptqvision.report``; written with the plot to
benchmarks/out/vit_grid/report.{md,png}); the attention and error-budget tables are this script's own.
On a machine shared with other jobs set OMP_WAIT_POLICY=PASSIVE (spinning OpenMP threads of two
processes on the same cores slow both down by tens of times; the results do not change).

    OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE python benchmarks/vit_grid.py
    OMP_NUM_THREADS=2 python benchmarks/vit_grid.py --cells 'qdrop_*w4a4' --list
    OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE python benchmarks/vit_grid.py --attention
    OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE python benchmarks/vit_grid.py --kl
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from ptqvision.report import Cell, make_report, read_results  # noqa: E402
from ptqvision.sweep import JobSpec, Sweep, SweepSettings, elapsed_s, read_status, status_table  # noqa: E402
from ptqvision.utils.atomic import atomic_write_text  # noqa: E402

OUT = os.path.join(ROOT, "benchmarks", "out", "vit_grid")
RESULTS = os.path.join(ROOT, "benchmarks", "results", "issue10")
DEMO = "configs/demo/vit_mnist_{}_w4a4.py"
BITS = (8, 6, 4, 3)
ABLATION_BITS = (4, 3)

BASE = {"softmax": "agq", "attn_granularity": "tensor", "ln_reparam": False}
METHODS = {  # name: (row label, placement, extra options)
    "rtn": ("RTN (uniform softmax)", {**BASE, "softmax": "uniform"}, []),
    "repqvit": ("RepQ-ViT (LN reparam + log√2 softmax)", {**BASE, "softmax": "log_sqrt2", "ln_reparam": True}, []),
    "qdrop": ("QDrop (AGQ softmax)", BASE, []),
    "pdquant": ("PD-Quant, no DC (AGQ softmax)", BASE, ["recon.dc=False"]),
}
ABLATIONS = {  # name: (row label, change from BASE)
    "sm_uniform": ("softmax uniform", {"softmax": "uniform"}),
    "sm_log2": ("softmax log2", {"softmax": "log2"}),
    "sm_log_sqrt2": ("softmax log√2", {"softmax": "log_sqrt2"}),
    "sm_agq": ("softmax AGQ (base)", {}),
    "head": ("q/k/v per head", {"attn_granularity": "head"}),
    "reparam": ("LN reparam on", {"ln_reparam": True}),
}
ABLATION_METHODS = ("rtn", "qdrop")
RECON_METHODS = ("qdrop", "pdquant")
BUDGET = ["calib.num_samples=256", "recon.iters=200", "recon.batch_size=32", "recon.weight_lr=0.01",
          "recon.round_lambda=0.01"]


def config_for(method: str) -> tuple[str, list[str]]:
    """Return the method's demo config if it exists, else the QDrop demo config with method.type set."""
    own = DEMO.format(method)
    if os.path.isfile(os.path.join(ROOT, own)):
        return own, []
    return DEMO.format("qdrop"), [f"method.type={method}"]


def placement_options(p: dict) -> list[str]:
    return [f"quant.softmax={p['softmax']}", f"quant.attn_granularity={p['attn_granularity']}",
            f"quant.ln_reparam={p['ln_reparam']}"]


def cells() -> list[dict]:
    """Return every cell of the grid, deduplicated (an ablation equal to a method row is that cell)."""
    out: dict[str, dict] = {}
    by_key: dict[tuple, str] = {}

    def add(name: str, method: str, bits: int, placement: dict, extra: list[str], row: str) -> None:
        key = (method, bits, tuple(sorted(placement.items())), tuple(extra))
        if key in by_key:
            out[by_key[key]]["rows"].append(row)
            return
        config, base = config_for(method)
        opts = base + [f"quant.w_bits={bits}", f"quant.a_bits={bits}"] + placement_options(placement) + extra
        opts += (BUDGET if method in RECON_METHODS else ["calib.num_samples=256"])
        opts += ["eval.progress=False", "device=cpu", f"eval.fp={name == 'rtn_w8a8'}"]
        by_key[key] = name
        out[name] = {"name": name, "method": method, "bits": bits, "placement": placement, "config": config,
                     "options": opts, "rows": [row]}

    for method, (label, placement, extra) in METHODS.items():
        for bits in BITS:
            add(f"{method}_w{bits}a{bits}", method, bits, placement, extra, method)
    for method in ABLATION_METHODS:
        extra = METHODS[method][2]
        for abl, (label, change) in ABLATIONS.items():
            for bits in ABLATION_BITS:
                add(f"{method}_{abl}_w{bits}a{bits}", method, bits, {**BASE, **change}, extra, f"{method}/{abl}")
    return list(out.values())


def sweep_jobs(chosen: list[dict]) -> list[JobSpec]:
    return [JobSpec(c["name"], c["config"], c["options"], label=c["method"]) for c in chosen]


def finished_cells(every: list[dict]) -> list[tuple[dict, dict, dict]]:
    """Return (cell, results, sweep record) for every cell whose run finished with its current config."""
    done = {p.spec.name for p in Sweep(OUT, sweep_jobs(every)).plan() if p.action == "skip"}
    status = read_status(OUT)["jobs"]
    return [(c, read_results(os.path.join(OUT, c["name"], "results.json")), status.get(c["name"], {}))
            for c in every if c["name"] in done]


def summarise(cell: dict, res: dict, rec: dict) -> dict:
    rec_info = res.get("reconstruction", {})
    wall = elapsed_s(rec)
    return {"name": cell["name"], "method": cell["method"], "bits": cell["bits"], "rows": cell["rows"],
            "placement": cell["placement"], "config": cell["config"], "options": cell["options"],
            "top1": res["metrics"]["quant"]["top1"], "top5": res["metrics"]["quant"].get("top5"),
            "fp_top1": res["metrics"].get("fp", {}).get("top1"),
            "time_s": res["time_s"], "wall_s": round(wall, 1) if wall is not None else None,
            "finished": rec.get("finished"), "calib_sha256": res["calib"]["sha256"],
            "recon": {k: res["recon"][k] for k in ("iters", "batch_size", "weight_lr", "round_lambda", "drop_prob",
                                                   "pd_loss", "dc", "act_reinit_samples")} if "recon" in res else None,
            "peak_rss_mib": rec_info.get("memory", {}).get("host_peak_rss_mib"),
            "softmax_tau": res.get("calibration", {}).get("softmax_tau")}


ROW_ORDER = list(METHODS) + [f"{m}/{a}" for m in ABLATION_METHODS for a in ABLATIONS]


def row_label(row: str) -> str:
    """Return a row's label in the tables: the method's, or 'RTN, <ablation>' / 'QDrop, <ablation>'."""
    if "/" not in row:
        return METHODS[row][0]
    method, ablation = row.split("/")
    return f"{'RTN' if method == 'rtn' else 'QDrop'}, {ABLATIONS[ablation][0]}"


def report_cells(done: list[tuple[dict, dict, dict]], kls: dict[str, dict] | None = None) -> list[Cell]:
    """Return one report cell per row a finished cell stands in; with ``kls``, the cell's KL as its metric
    ``kl`` (cells without one left out)."""
    out = []
    for cell, res, _ in done:
        if kls is not None:
            if cell["name"] not in kls:
                continue
            res = {**res, "metrics": {"quant": {"kl": kls[cell["name"]]["kl"]}}}
        out += [Cell(row_label(row), res, os.path.join(OUT, cell["name"], "results.json")) for row in cell["rows"]]
    return out


def attention_stats(bits_list: tuple[int, ...] = (3, 4, 6, 8)) -> dict:
    """Measure the post-softmax maps of the full-precision MNIST ViT on the 256 calibration digits: how
    peaked they are, the share of probabilities (and of probability mass) below 1/2^b, and, per block, the
    error each softmax quantizer (uniform, log2, log√2, AGQ; calibrated as in the grid) leaves on A and
    on A·V, alone (every other tensor in full precision)."""
    import ptqvision  # noqa: F401
    import torch

    from ptqvision.config import load_config
    from ptqvision.nn.ops import QuantSoftmax, quant_ops
    from ptqvision.quant import Log2Quantizer, UniformQuantizer
    from ptqvision.quant.base import Quantizer
    from ptqvision.runner import build_quantized
    from ptqvision.tasks import build_task

    torch.manual_seed(0)
    cfg, _ = load_config(os.path.join(ROOT, DEMO.format("qdrop")), ["calib.num_samples=256"])
    _, qmodel, pre, _ = build_quantized(cfg)
    batches, info = build_task(cfg, pre).calibration()
    for m in qmodel.modules():
        if isinstance(m, Quantizer):
            m.enabled = False
    for _, op in quant_ops(qmodel):
        op.quantize_weight = False
    softmaxes = [(n, m) for n, m in qmodel.named_modules() if isinstance(m, QuantSoftmax)]
    maps: dict[str, list] = {n: [] for n, _ in softmaxes}

    def hook(name: str):
        def record(_m, args):
            maps[name].append((args[0].softmax(-1).detach(), args[1].detach()))
        return record

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in softmaxes]
    with torch.no_grad():
        for b in batches:
            qmodel(b)
    for h in handles:
        h.remove()

    def make(mode: str, bits: int):
        if mode == "uniform":
            return UniformQuantizer(bits, symmetric=False, observer="lp", observer_kwargs={"p": 2.4})
        return Log2Quantizer(bits, mode=mode, p=2.4)

    blocks = []
    for name, pairs in maps.items():
        a = torch.cat([p[0] for p in pairs])
        n_keys = a.shape[-1]
        row = {"block": name.rsplit(".attn", 1)[0], "keys": n_keys,
               "mean_row_max": round(float(a.amax(-1).mean()), 4),
               "median_prob": round(float(a.median()), 4),
               "entropy_over_log_n": round(float((-(a * a.clamp_min(1e-12).log()).sum(-1)).mean() / math.log(n_keys)), 4)}
        qs = torch.quantile(a.reshape(-1)[:: max(1, a.numel() // 1_000_000)],
                            torch.tensor([0.01, 0.1, 0.5, 0.9, 0.99]))
        row["quantiles_1_10_50_90_99"] = [round(float(v), 5) for v in qs]
        row["frac_below_2^-8"] = round(float((a < 2.0 ** -8).float().mean()), 4)
        for b in bits_list:
            small = a < 2.0 ** -b
            row[f"frac_below_2^-{b}"] = round(float(small.float().mean()), 4)
            row[f"mass_below_2^-{b}"] = round(float(a[small].sum() / a.sum()), 4)
        errors = {}
        with torch.no_grad():
            for b in bits_list:
                for mode in ("uniform", "log2", "log_sqrt2", "agq"):
                    q = make(mode, b)
                    q.start_observing()
                    for am, v in pairs:
                        q(am, v) if getattr(q, "needs_partner", False) else q(am)
                    q.finish_observing()
                    num_a = num_av = den_a = den_av = zeroed = zeroed_mass = 0.0
                    for am, v in pairs:
                        aq = q(am, v) if getattr(q, "needs_partner", False) else q(am)
                        num_a += float((aq - am).pow(2).sum())
                        den_a += float(am.pow(2).sum())
                        av, aqv = am @ v, aq @ v
                        num_av += float((aqv - av).pow(2).sum())
                        den_av += float(av.pow(2).sum())
                        z = (aq == 0) & (am > 0)
                        zeroed += float(z.float().sum())
                        zeroed_mass += float(am[z].sum())
                    total = float(a.numel())
                    errors[f"{mode}_w{b}"] = {
                        "rel_err_A": round(num_a / den_a, 5), "rel_err_AV": round(num_av / den_av, 5),
                        "zeroed_frac": round(zeroed / total, 4), "zeroed_mass": round(zeroed_mass / float(a.sum()), 4),
                        "tau": getattr(q, "chosen_tau", None)}
        row["quantizer_error"] = errors
        blocks.append(row)
    return {"what": "full-precision MNIST ViT, 256 calibration digits (seed 1005, sha256 "
                    f"{info['sha256'][:16]}); per block: the post-softmax map A (batch x 8 heads x 17 x 17); "
                    "rel_err = ||Q(A) - A||^2 / ||A||^2 and ||Q(A)V - AV||^2 / ||AV||^2 with only that quantizer "
                    "on; zeroed = probabilities > 0 that the quantizer maps to 0",
            "blocks": blocks}


GROUPS = ("weights", "linear inputs", "q, k", "v", "softmax A", "patch-embed input (8 bit)")


def error_budget(bits_list: tuple[int, ...] = (4, 3), softmaxes: tuple[str, ...] = ("uniform", "agq")) -> list[dict]:
    """RTN on the MNIST ViT with one group of quantizers on at a time (the rest in full precision): top-1 on
    the 2500 held-out digits and mean KL(FP ‖ quantized) of the logits, for each group and for all of them."""
    import ptqvision  # noqa: F401
    import torch

    from ptqvision.config import load_config
    from ptqvision.nn.ops import quant_ops
    from ptqvision.runner import build_quantized
    from ptqvision.tasks import build_task

    rows = []
    for softmax in softmaxes:
        for bits in bits_list:
            torch.manual_seed(1005)
            cfg, _ = load_config(os.path.join(ROOT, DEMO.format("qdrop")), [
                "method.type=rtn", "calib.num_samples=256", f"quant.w_bits={bits}", f"quant.a_bits={bits}",
                f"quant.softmax={softmax}", "quant.attn_granularity=tensor", "quant.ln_reparam=False"])
            fp_model, qmodel, pre, adapter = build_quantized(cfg)
            task = build_task(cfg, pre)
            batches, _ = task.calibration()
            adapter.calibrate(qmodel, batches, torch.device("cpu"), progress=False)
            loader = task.evaluator(torch.device("cpu"), False).loader
            groups: dict[str, list] = {g: [] for g in GROUPS}
            for _, op in quant_ops(qmodel):
                for role, q in op.quantizers().items():
                    if role in op.weights():
                        groups["weights"].append(("w", op))
                    elif type(op).__name__ == "QuantConv2d":
                        groups["patch-embed input (8 bit)"].append(("a", q))
                    elif role == "input":
                        groups["linear inputs"].append(("a", q))
                    elif role in ("q", "k"):
                        groups["q, k"].append(("a", q))
                    elif role == "v":
                        groups["v"].append(("a", q))
                    elif role == "softmax":
                        groups["softmax A"].append(("a", q))
                    else:
                        raise RuntimeError(f"unexpected quantizer role {role!r} of {type(op).__name__}")
            everything = [x for g in groups.values() for x in g]

            def switch(on: list) -> None:
                ids = {id(o) for _, o in on}
                for kind, o in everything:
                    if kind == "w":
                        o.quantize_weight = id(o) in ids
                    else:
                        o.enabled = id(o) in ids

            with torch.inference_mode():
                ref = [(fp_model(x), y) for x, y in loader]
                row = {"softmax": softmax, "bits": bits}
                for name, on in [("all", everything)] + list(groups.items()):
                    switch(on)
                    correct = n = 0
                    kl = 0.0
                    for (x, y), (z_fp, _) in zip(loader, ref):
                        z = qmodel(x)
                        correct += int((z.argmax(-1) == torch.as_tensor(y)).sum())
                        n += len(y)
                        kl += float(torch.nn.functional.kl_div(z.log_softmax(-1), z_fp.log_softmax(-1),
                                                               log_target=True, reduction="sum"))
                    row[name] = {"top1": round(100.0 * correct / n, 2), "kl": round(kl / n, 5), "quantizers": len(on)}
            rows.append(row)
    return rows


def cell_kl(cells_done: list[tuple[dict, dict, dict]]) -> dict[str, dict]:
    """Rebuild each finished cell's quantized model from its quantized.pth and return, per cell, top-1 (a
    check against results.json) and the mean KL(FP ‖ quantized) of the logits on the 2500 held-out digits:
    a finer measure than top-1, where a cell differs by a few digits."""
    import ptqvision  # noqa: F401
    import torch

    from ptqvision.checkpoint import load_into, load_quantized
    from ptqvision.config import load_config
    from ptqvision.runner import build_quantized
    from ptqvision.tasks import build_task

    out = {}
    ref = None
    for cell, res, rec in cells_done:
        path = os.path.join(OUT, cell["name"], "quantized.pth")
        payload = load_quantized(path)
        cfg, _ = load_config(os.path.join(ROOT, cell["config"]), cell["options"])
        fp_model, qmodel, pre, adapter = build_quantized(cfg)
        adapter.restore(qmodel, payload["meta"].get("adapter_state", {}))
        load_into(qmodel, payload, path)
        loader = build_task(cfg, pre).evaluator(torch.device("cpu"), False).loader
        with torch.inference_mode():
            if ref is None:
                ref = [fp_model.eval()(x).log_softmax(-1) for x, _ in loader]
            correct = n = 0
            kl = 0.0
            for (x, y), lp_fp in zip(loader, ref):
                z = qmodel.eval()(x)
                correct += int((z.argmax(-1) == torch.as_tensor(y)).sum())
                n += len(y)
                kl += float(torch.nn.functional.kl_div(z.log_softmax(-1), lp_fp, log_target=True, reduction="sum"))
        top1 = round(100.0 * correct / n, 2)
        if abs(top1 - res["metrics"]["quant"]["top1"]) > 1e-6:
            raise RuntimeError(f"{cell['name']}: rebuilt model gives top-1 {top1}, results.json "
                               f"{res['metrics']['quant']['top1']}")
        out[cell["name"]] = {"kl": round(kl / n, 5), "top1_rebuilt": top1, "finished": rec.get("finished")}
        print(f"{cell['name']}: KL {kl / n:.5f}", flush=True)
    return out


def budget_table(rows: list[dict]) -> str:
    names = ("all",) + GROUPS
    lines = ["| RTN placement | " + " | ".join(f"{g} on" if g != "all" else "all on" for g in names) + " |",
             "|---|" + "---|" * len(names)]
    for r in rows:
        lines.append(f"| W{r['bits']}A{r['bits']}, softmax {r['softmax']} | " +
                     " | ".join(f"{r[g]['top1']:.2f} / {r[g]['kl']:.4f}" for g in names) + " |")
    return "\n".join(lines)


def attention_table(att: dict) -> str:
    modes = ("uniform", "log2", "log_sqrt2", "agq")
    lines = ["| block | mean row max | A < 1/8 (mass) | A < 1/16 (mass) | " +
             " | ".join(f"{m} W{b}: err A·V / zeroed" for b in (4, 3) for m in modes) + " |",
             "|---|---|---|---|" + "---|" * 8]
    for r in att["blocks"]:
        e = r["quantizer_error"]
        cells = [f"{e[f'{m}_w{b}']['rel_err_AV']:.4f} / {100 * e[f'{m}_w{b}']['zeroed_frac']:.0f} %"
                 + (f" (τ={e[f'{m}_w{b}']['tau']})" if m == "agq" else "") for b in (4, 3) for m in modes]
        lines.append(f"| {r['block']} | {r['mean_row_max']:.3f} | "
                     f"{100 * r['frac_below_2^-3']:.0f} % ({100 * r['mass_below_2^-3']:.0f} %) | "
                     f"{100 * r['frac_below_2^-4']:.0f} % ({100 * r['mass_below_2^-4']:.0f} %) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["*"], help="fnmatch patterns of cell names (default: all)")
    parser.add_argument("--list", action="store_true", help="list the selected cells and whether they are done")
    parser.add_argument("--summary", action="store_true", help="only write/print the table of the cells done")
    parser.add_argument("--attention", action="store_true",
                        help="only measure the attention maps and the softmax quantizers' errors (stored in the "
                             "JSON under 'attention', with the table of the cells done)")
    parser.add_argument("--kl", action="store_true",
                        help="only add KL(FP || quantized) on the held-out digits to every finished cell (from its "
                             "quantized.pth)")
    parser.add_argument("--out", default=os.path.join(RESULTS, "vit_grid.json"))
    args = parser.parse_args()
    os.chdir(ROOT)  # the demo configs name their data relative to the repository root
    # the cells inherit it (the sweep would give a lone CPU job every core); recorded in the JSON
    threads = os.environ.setdefault("OMP_NUM_THREADS", "2")
    previous = {}
    if os.path.isfile(args.out):
        with open(args.out) as f:
            previous = json.load(f)
    every = cells()
    chosen = [c for c in every if any(fnmatch.fnmatch(c["name"], p) for p in args.cells)]
    if args.list:
        plan = {p.spec.name: p.action for p in Sweep(OUT, sweep_jobs(chosen)).plan()}
        for c in chosen:
            state = "done" if plan[c["name"]] == "skip" else "todo"
            print(f"{c['name']:<28} {state:<5} {c['config']} {' '.join(c['options'])}")
        print(f"{len(chosen)} cells, {sum(1 for c in chosen if plan[c['name']] != 'skip')} to run")
        return 0
    t0 = time.perf_counter()
    ran, code = 0, 0
    attention = previous.get("attention")
    kls = {c["name"]: c["kl"] for c in previous.get("cells", []) if "kl" in c}
    if args.kl:
        kls.update(cell_kl(finished_cells(every)))
        args.summary = True
    if args.attention:
        attention = attention_stats()
        attention["error_budget"] = error_budget()
        args.summary = True
    if not args.summary:
        records = Sweep(OUT, sweep_jobs(chosen), SweepSettings(gpus=0, jobs=1)).run()
        ran = sum(1 for r in records.values() if r["state"] == "done" and not r.get("skipped"))
        code = 1 if any(r["state"] != "done" for r in records.values()) else 0
        print(status_table(OUT, [c["name"] for c in chosen]))
    done = finished_cells(every)
    rows = [summarise(c, r, rec) for c, r, rec in done]
    kls = {name: kl for name, kl in kls.items()
           if any(r["name"] == name and kl.get("finished") == r["finished"] for r in rows)}  # not from an older run
    for r in rows:
        if r["name"] in kls:
            r["kl"] = kls[r["name"]]
    fps = [r["fp_top1"] for r in rows if r["fp_top1"] is not None]
    fp = fps[0] if fps else None
    total = sum(r["wall_s"] or 0 for r in rows)
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    result = {"what": "MNIST toy ViT (configs/_base_/models/vit_mnist_tiny.py; real weights trained on MNIST, not "
                      "ImageNet); 256 calibration digits (seed 1005), 200 iterations per unit, batch 32, AdaRound "
                      "lr 1e-2, round lambda 0.01; top-1 on the 2500 held-out digits",
              "fp_top1": fp, "threads": threads, "cells_wall_s_sum": round(total, 1),
              "last_run_with_cells": {"s": round(time.perf_counter() - t0, 1), "cells": ran, "load_avg_after": load}
              if ran else previous.get("last_run_with_cells"),
              "cells": rows}
    if attention:
        result["attention"] = attention
    atomic_write_text(args.out, json.dumps(result, indent=1, ensure_ascii=False))  # the committed file's format
    print(f"\nMNIST toy ViT (trained on MNIST; not ImageNet), top-1 % on 2500 held-out digits (drop from FP); "
          f"256 calibration digits, 200 iterations per unit; {len(rows)} cells, {total:.0f} s of cell wall time\n")
    # the rows are placements by design: their placement differences are the point of the grid
    labels = [row_label(r) for r in ROW_ORDER]
    print(make_report(cells=report_cells(done), columns="bits", rows=labels, allow=["placement"],
                      out=os.path.join(OUT, "report.md")), end="")
    if kls:
        print("\nMean KL(FP || quantized) of the logits on the 2500 held-out digits (lower is better)\n")
        print(make_report(cells=report_cells(done, kls), metrics=["kl"], columns="bits", rows=labels,
                          allow=["placement"], decimals=4, out=os.path.join(OUT, "report_kl.md")), end="")
    if attention:
        print("\nPost-softmax maps of the FP model (256 calibration digits) and the error of each softmax quantizer "
              "alone (||Q(A)V - AV||^2 / ||AV||^2; zeroed: share of probabilities > 0 mapped to 0)\n")
        print(attention_table(attention))
        if attention.get("error_budget"):
            print("\nRTN with one group of quantizers on at a time (top-1 / mean KL(FP || quantized) on the 2500 "
                  "held-out digits)\n")
            print(budget_table(attention["error_budget"]))
    print(f"\nwritten to {os.path.relpath(args.out, ROOT)}")
    return code


if __name__ == "__main__":
    sys.exit(main())
