"""tools/report.py on hand-made results.json files: the paper's layout, refused and allowed protocol
differences, the published numbers in their cells, the plot, and the paper files against REFERENCE.md."""
import json
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import report as report_cli  # noqa: E402

from ptqvision.errors import ReportError  # noqa: E402
from ptqvision.report import (Cell, available_papers, build_table, load_cells, load_paper, make_report,  # noqa: E402
                              render)

REFERENCE = os.path.join(os.path.dirname(ROOT), "shared", "REFERENCE.md")
PAPER_QUANT = {"w_granularity": "channel", "a_granularity": "tensor", "w_symmetric": False, "a_symmetric": False,
               "head_stem_8bit": True, "fold_bn": True}


def results(model, method, w, a, top1, fp=None, calib=1024, num_val=50000, stem_output_8bit=False, **quant):
    """Return a results.json of a run: 8-bit stem and head weights, the rest at the run's bits."""
    q = {**PAPER_QUANT, "w_bits": w, "a_bits": a, "stem_output_8bit": stem_output_8bit, **quant}
    placement = [
        {"name": "conv1.weight_quantizer", "kind": "weight", "bits": 8, "granularity": "channel"},
        {"name": "conv1.output_quantizer", "kind": "act", "bits": 8 if stem_output_8bit else a,
         "granularity": "tensor"},
        {"name": "layer1.conv.weight_quantizer", "kind": "weight", "bits": w, "granularity": "channel"},
        {"name": "fc.weight_quantizer", "kind": "weight", "bits": 8, "granularity": "channel"}]
    metrics = {"quant": {"top1": top1, "top5": top1 + 20}}
    if fp is not None:
        metrics["fp"] = {"top1": fp, "top5": fp + 20}
    return {"config": f"configs/{method}/{model}_w{w}a{a}.py", "model": model, "method": method,
            "task": "classification", "w_bits": w, "a_bits": a, "metrics": metrics,
            "calib": {"num_samples": calib, "seed": 1005, "sha256": "0" * 64},
            "time_s": {"calibration": 1.0, "reconstruction": 2.0, "evaluation": 3.0, "total": 6.0},
            "quant": q, "preprocess": {"resize": 256, "crop": 224},
            "data": {"val": {"root": "data/imagenet/val"}, "num_val_images": num_val}, "placement": placement}


def write(folder, res):
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(res))
    return str(folder)


def grid(tmp_path, **changes):
    """Write a small grid (two models, QDrop W4A4 and W2A4, PD-Quant W4A4 on ResNet-18 only); ``changes``
    replace a cell's results by name."""
    cells = {
        "mnv2_qdrop_w4a4": results("mobilenet_v2", "qdrop", 4, 4, 67.5, fp=72.0),
        "mnv2_qdrop_w2a4": results("mobilenet_v2", "qdrop", 2, 4, 54.0),
        "r18_pdquant_w4a4": results("resnet18", "pdquant", 4, 4, 69.25),
        "r18_qdrop_w4a4": results("resnet18", "qdrop", 4, 4, 69.0, fp=71.0),
        "r18_qdrop_w2a4": results("resnet18", "qdrop", 2, 4, 64.0),
    }
    cells.update(changes)
    for name, res in cells.items():
        write(tmp_path / "sweep" / name, res)
    return str(tmp_path / "sweep")


def table_md(inputs, **kw):
    cells, notes = load_cells([inputs])
    return render([build_table(cells, **kw)], "md", notes)


def test_table_has_the_papers_layout(tmp_path):
    text = table_md(grid(tmp_path))
    assert text == (
        "top1 (%); cells: quantized (drop from FP)\n\n"
        "| bits | method | mobilenet_v2 | resnet18 |\n"
        "|---|---|---|---|\n"
        "| FP |  | 72.00 | 71.00 |\n"
        "| W4A4 | QDrop | 67.50 (-4.50) | 69.00 (-2.00) |\n"
        "| W4A4 | PD-Quant | – | 69.25 (-1.75) |\n"
        "| W2A4 | QDrop | 54.00 (-18.00) | 64.00 (-7.00) |\n")
    by_bits = table_md(grid(tmp_path / "b"), columns="bits", metric="top5")
    assert "| method | model | FP | W4A4 | W2A4 |" in by_bits
    assert "| QDrop | resnet18 | 91.00 | 89.00 (-2.00) | 84.00 (-7.00) |" in by_bits
    cells, _ = load_cells([grid(tmp_path / "c")])
    csv_lines = render([build_table(cells)], "csv").splitlines()
    assert csv_lines[0].startswith("label,method,model,w_bits,a_bits,metric,value,fp,drop,paper")
    assert any(ln.startswith("pdquant,pdquant,resnet18,4,4,top1,69.25,71.0,-1.75,,,,,,False,1024,") for ln in csv_lines)
    data = json.loads(render([build_table(cells, metric="time_s.total")], "json"))["tables"][0]
    assert data["metric"] == "time_s.total" and {c["value"] for c in data["cells"]} == {6.0}
    assert all(c["drop"] is None for c in data["cells"])  # a time has no drop from FP


def test_row_order_digits_and_tables_without_full_precision():
    """A benchmark's own row labels, in its order; a metric no run measured at FP (a KL) with more digits."""
    def kl_cell(label, bits, value):
        res = results("resnet18", "qdrop", bits, bits, 0.0)
        return Cell(label, {**res, "metrics": {"quant": {"kl": value}}}, f"{label} {bits}")

    cells = [kl_cell("QDrop, softmax log2", 4, 0.0126), kl_cell("RTN, softmax uniform", 4, 0.0183),
             kl_cell("RTN, softmax uniform", 3, 0.1376)]
    ordered = render([build_table(cells, "kl", columns="bits", rows=["RTN, softmax uniform", "QDrop, softmax log2"],
                                  decimals=4)])
    assert ordered == ("kl; cells: value; model resnet18\n\n"
                       "| method | W4A4 | W3A3 |\n"
                       "|---|---|---|\n"
                       "| RTN, softmax uniform | 0.0183 | 0.1376 |\n"
                       "| QDrop, softmax log2 | 0.0126 | – |\n")
    # without ``rows``: labels that are no method name keep the order in which they first appear
    first = render([build_table(cells, "kl", columns="bits", decimals=4)]).splitlines()
    assert first[4].startswith("| QDrop, softmax log2 |") and first[5].startswith("| RTN, softmax uniform |")
    # a grid that skipped the FP evaluation in every cell shows values, no FP row and no drops
    no_fp = [Cell("qdrop", results("resnet18", "qdrop", w, 4, v), f"q{w}") for w, v in ((4, 69.0), (2, 64.0))]
    assert render([build_table(no_fp)]) == ("top1 (%); cells: value\n\n"
                                            "| bits | method | resnet18 |\n"
                                            "|---|---|---|\n"
                                            "| W4A4 | QDrop | 69.00 |\n"
                                            "| W2A4 | QDrop | 64.00 |\n")


def test_cells_that_differ_in_protocol_are_refused_or_noted(tmp_path):
    # calibration size
    sweep = grid(tmp_path / "calib", mnv2_qdrop_w2a4=results("mobilenet_v2", "qdrop", 2, 4, 54.0, calib=64))
    with pytest.raises(ReportError) as err:
        table_md(sweep)
    assert str(err.value).startswith("refusing to put side by side mobilenet_v2 QDrop W4A4 and mobilenet_v2 QDrop "
                                     "W2A4: calibration size differs (calib.num_samples 1024 vs 64)")
    assert "pass --allow-mismatch calib" in str(err.value)
    text = table_md(sweep, allow=["calib"])
    assert "| W2A4 | QDrop | 54.00 (-18.00) † | 64.00 (-7.00) |" in text
    assert "† calibration size differs: calib.num_samples 1024 vs 64 (mobilenet_v2 QDrop W2A4)" in text

    # placement: an 8-bit stem output beside a 4-bit one; the 8-bit head of a W8A8 run is no difference
    sweep = grid(tmp_path / "place", r18_pdquant_w4a4=results("resnet18", "pdquant", 4, 4, 69.25,
                                                              stem_output_8bit=True),
                 r18_rtn_w8a8=results("resnet18", "rtn", 8, 8, 70.9))
    with pytest.raises(ReportError, match=r"resnet18 QDrop W4A4 and resnet18 PD-Quant W4A4: placement differs "
                                          r"\(conv1.output_quantizer bits 4 vs 8\)"):
        table_md(sweep)
    assert "† placement differs" in table_md(sweep, allow=["placement"])
    table_md(grid(tmp_path / "w8", r18_rtn_w8a8=results("resnet18", "rtn", 8, 8, 70.9)))

    # evaluation protocol: another evaluation set, other preprocessing of one model, another FP value
    sweep = grid(tmp_path / "eval", r18_qdrop_w2a4=results("resnet18", "qdrop", 2, 4, 64.0, num_val=1300))
    with pytest.raises(ReportError, match=r"evaluation protocol differs \(data.num_val_images: 50000 vs 1300\)"):
        table_md(sweep)
    other = results("resnet18", "qdrop", 2, 4, 64.0)
    other["preprocess"]["resize"] = 232
    with pytest.raises(ReportError, match=r"preprocess.resize: 256 vs 232"):
        table_md(grid(tmp_path / "pre", r18_qdrop_w2a4=other))
    with pytest.raises(ReportError, match=r"FP top1 71.00 vs 70.00"):
        table_md(grid(tmp_path / "fp", r18_qdrop_w2a4=results("resnet18", "qdrop", 2, 4, 64.0, fp=70.0)))
    # two models differ in preprocessing and placement by nature: not compared
    mnv2 = results("mobilenet_v2", "qdrop", 2, 4, 54.0)
    mnv2["preprocess"]["resize"] = 232
    mnv2["placement"].append({"name": "features.0.weight_quantizer", "kind": "weight", "bits": 2})
    table_md(grid(tmp_path / "models", mnv2_qdrop_w2a4=mnv2, mnv2_qdrop_w4a4=dict(mnv2, w_bits=4)))

    with pytest.raises(ReportError, match="two results for the same cell"):
        table_md(grid(tmp_path / "dup", again=results("resnet18", "qdrop", 4, 4, 68.0)))
    with pytest.raises(ReportError, match="has no metric 'segm_mAP'"):
        table_md(grid(tmp_path / "metric"), metric="segm_mAP")


def test_published_numbers_stand_in_their_cells(tmp_path):
    sweep = grid(tmp_path / "paper", mnv2_qdrop_w2a2=results("mobilenet_v2", "qdrop", 2, 2, 12.5))
    text = table_md(sweep, papers=[load_paper("qdrop")])
    lines = text.splitlines()
    assert "QDrop: Randomly Dropping Quantization" in lines[0] and "arXiv 2203.05740" in lines[0]
    # columns in the paper's order (ResNet-18 first); our number, the paper's with its drop, the difference
    assert lines[2] == ("| bits | method | resnet18 | resnet18 paper | resnet18 Δ | mobilenet_v2 | mobilenet_v2 paper "
                        "| mobilenet_v2 Δ |")
    assert "| FP |  | 71.00 | 71.06 | -0.06 | 72.00 | 72.49 | -0.49 |" in lines
    assert "| W4A4 | QDrop | 69.00 (-2.00) | 69.13 (-1.93) | -0.13 | 67.50 (-4.50) | 67.83 (-4.66) | -0.33 |" in lines
    assert "| W4A4 | PD-Quant | 69.25 (-1.75) | – | – | – | – | – |" in lines
    assert "| W2A4 | QDrop | 64.00 (-7.00) | 64.38 (-6.68) | -0.38 | 54.00 (-18.00) | 54.29 (-18.20) | -0.29 |" in lines
    assert "| W2A2 | QDrop | – | 51.69 (-19.37) | – | 12.50 (-59.50) | 11.95 (-60.54) | +0.55 |" in lines

    # both papers: PD-Quant's numbers stand in our PD-Quant row, its W2A4 row is the paper's only
    both = table_md(sweep, papers=[load_paper("qdrop"), load_paper("pdquant")])
    assert "| W4A4 | PD-Quant | 69.25 (-1.75) | 69.30 (-1.76) | -0.05 | – | 68.33 (-4.16) | – |" in both
    assert "| W2A4 | PD-Quant | – | 65.07 (-5.99) | – | – | 55.27 (-17.22) | – |" in both
    # the paper gives top-1 only: a top-5 table has no paper columns
    assert "paper" not in table_md(sweep, metric="top5", papers=[load_paper("qdrop")])

    # our protocol against the paper's: 64 calibration images, 1300 evaluation images, no 8-bit head
    cpu = {n: dict(r, calib={**r["calib"], "num_samples": 64}) for n, r in (
        ("r18_qdrop_w4a4", results("resnet18", "qdrop", 4, 4, 69.0, fp=71.0)),
        ("mnv2_qdrop_w4a4", results("mobilenet_v2", "qdrop", 4, 4, 67.5, fp=72.0)))}
    for name, res in cpu.items():
        write(tmp_path / "cpu" / name, res)
    with pytest.raises(ReportError, match=r"resnet18 QDrop W4A4 and the paper: calibration size differs "
                                          r"\(calib.num_samples 64 vs 1024 in qdrop\)"):
        table_md(str(tmp_path / "cpu"), papers=[load_paper("qdrop")])
    head = grid(tmp_path / "head", r18_qdrop_w4a4=results("resnet18", "qdrop", 4, 4, 69.0, fp=71.0,
                                                          head_stem_8bit=False))
    with pytest.raises(ReportError, match=r"placement differs \(quant.head_stem_8bit False vs True in qdrop\)"):
        table_md(head, papers=[load_paper("qdrop")])
    subset = {n: results(m, method, w, a, v, fp=f, calib=64, num_val=1300) for n, m, method, w, a, v, f in (
        ("r18_qdrop_w4a4", "resnet18", "qdrop", 4, 4, 69.0, 71.0),
        ("r18_qdrop_w2a4", "resnet18", "qdrop", 2, 4, 64.0, None),
        ("mnv2_qdrop_w4a4", "mobilenet_v2", "qdrop", 4, 4, 67.5, 72.0),
        ("mnv2_qdrop_w2a4", "mobilenet_v2", "qdrop", 2, 4, 54.0, None),
        ("r18_pdquant_w4a4", "resnet18", "pdquant", 4, 4, 69.25, None))}
    text = table_md(grid(tmp_path / "subset", **subset), papers=[load_paper("qdrop")], allow=["calib", "eval"])
    assert "| W4A4 | QDrop | 69.00 (-2.00) † | 69.13 (-1.93) | -0.13 |" in text
    assert ("† evaluation protocol differs: 1300 evaluation images vs 50000 in qdrop (ImageNet-1k validation set "
            "(50 000 images)") in text
    assert "† calibration size differs: calib.num_samples 64 vs 1024 in qdrop (resnet18 QDrop W4A4, mobilenet_v2 " \
           "QDrop W4A4, resnet18 QDrop W2A4, mobilenet_v2 QDrop W2A4)" in text


def test_report_command_writes_table_and_plot(tmp_path, capsys):
    sweep = grid(tmp_path)
    (tmp_path / "sweep" / "status.json").write_text(json.dumps({"jobs": {
        name: {"name": name, "state": "done", "label": None} for name in os.listdir(sweep)} | {
        "r50_qdrop_w4a4": {"name": "r50_qdrop_w4a4", "state": "failed", "reason": "checkpoint not found: x.pth"}}}))
    assert report_cli.main([sweep, "--paper", "qdrop"]) == 0
    out = capsys.readouterr().out
    assert "| W4A4 | QDrop | 69.00 (-2.00) | 69.13 (-1.93) | -0.13 |" in out
    assert "not in the table: r50_qdrop_w4a4: failed: checkpoint not found: x.pth" in out
    assert (tmp_path / "sweep" / "report.md").read_text() == out
    png = tmp_path / "sweep" / "report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    image = matplotlib.image.imread(str(png))
    assert image.shape[:2] == (360, 960)  # one panel per model: two panels of 4.8 x 3.6 inches at 100 dpi
    assert image[..., :3].std() > 0.05  # lines drawn, not a blank canvas

    assert report_cli.main([sweep, "--format", "csv", "--out", str(tmp_path / "r.csv"), "--metric", "top1", "top5",
                            "--no-plot"]) == 0
    capsys.readouterr()
    rows = (tmp_path / "r.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 5 and not (tmp_path / "r.png").exists()
    assert report_cli.main([str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip() == f"error: no such file or folder: {tmp_path / 'missing'}"
    assert report_cli.main([sweep, "--paper", "nopaper"]) == 2
    assert "error: unknown paper 'nopaper'; known: adalog" in capsys.readouterr().err


def test_bad_paper_files_are_refused_in_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "title": "t", "protocol": {"task": "classification", "metric": "top1"},
                               "fp": {"resnet18": "high"}, "results": []}))
    with pytest.raises(ReportError, match="fp must map model names to numbers"):
        load_paper(str(bad))


def _reference_section(number: int) -> str:
    if not os.path.isfile(REFERENCE):
        pytest.skip("REFERENCE.md is not beside the repository")
    text = open(REFERENCE).read()
    return text.split(f"\n## {number}.")[1].split("\n## ")[0]


def test_cnn_paper_files_hold_the_reference_table():
    section = _reference_section(7)
    models = ["resnet18", "resnet50", "mobilenet_v2", "regnet_x_600mf", "regnet_x_3_2gf", "mnasnet2_0"]
    num = r"(\d+\.\d+)"
    fp = re.search(rf"ResNet-18 {num}, ResNet-50 {num},\s+MobileNetV2 {num}, RegNetX-600MF {num}, "
                   rf"RegNetX-3.2GF {num}, MnasNet-2.0 {num}", section)
    rows = re.findall(r"^\| (W\dA\d) \| (QDrop|PD-Quant)[^|]*\|((?: [\d.]+ \|){6})$", section, re.M)
    assert fp and len(rows) == 8
    for name, method in (("qdrop", "QDrop"), ("pdquant", "PD-Quant")):
        paper = load_paper(name)
        assert paper.fp == dict(zip(models, map(float, fp.groups())))
        mine = [r for r in rows if r[1] == method]
        assert len(paper.results) == len(mine) == 4
        for bits, _, values in mine:
            w, a = int(bits[1]), int(bits[3])
            expected = dict(zip(models, map(float, values.replace("|", " ").split())))
            assert {m: paper.value(name, m, (w, a)) for m in models} == expected, (name, bits)


def test_vit_paper_files_hold_the_reference_numbers():
    section = _reference_section(4)
    text = " ".join(section.split())
    number = r"(?:\d+\.\d+|–)"
    numbers = rf"\d+\.\d+ / {number}(?: / \d+\.\d+)?"
    found = {m: (ds, vb) for m, ds, vb in re.findall(
        rf"(RepQ-ViT|AdaLog|APHQ-ViT|FIMA-Q) DeiT-S ({numbers}), ViT-B ({numbers})", text)}
    assert set(found) == {"RepQ-ViT", "AdaLog", "APHQ-ViT", "FIMA-Q"}
    files = {"RepQ-ViT": "repqvit", "AdaLog": "adalog", "APHQ-ViT": "aphq_vit", "FIMA-Q": "fima_q"}
    for method, (deit, vit) in found.items():
        paper = load_paper(files[method])
        for model, numbers in (("deit_small_patch16_224", deit), ("vit_base_patch16_224", vit)):
            for bits, value in zip((4, 3, 6), numbers.split(" / ")):  # REFERENCE gives W4A4 / W3A3 / W6A6
                got = paper.value(files[method], model, (bits, bits))
                assert got == (None if value == "–" else float(value)), (method, model, bits)
    assert load_paper("aphq_vit").value("qdrop", "vit_base_patch16_224", (4, 4)) == 82.0
    assert load_paper("is_vit").value("qdrop", "vit_base_patch16_224", (4, 4)) == 47.3
    assert "ViT-B W4A4 47.3 in I&S-ViT, 82.0 in APHQ" in text
    assert set(available_papers()) == {"qdrop", "pdquant", "repqvit", "adalog", "aphq_vit", "fima_q", "is_vit"}


def test_make_report_writes_atomically_beside_the_table(tmp_path):
    out = tmp_path / "out" / "table.json"
    text = make_report([grid(tmp_path)], fmt="json", metrics=["top1", "top5"], out=str(out))
    assert json.loads(out.read_text()) == json.loads(text)
    assert (tmp_path / "out" / "table.png").is_file() and (tmp_path / "out" / "table_top5.png").is_file()
    assert not [p for p in os.listdir(tmp_path / "out") if p.startswith(".tmp-")]


def test_seeded_cells_of_a_benchmark_grid(tmp_path, capsys):
    """benchmarks/recon_grid.py and pdquant_grid.py --seeds: each seed of a cell is its own sweep job
    (``<cell>_seed<s>``); the table shows the cells' own runs, seeds.json the spread over the seeds."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import seeds

    sweep = tmp_path / "grid"
    jobs = {}
    runs = {"mobilenet_v2_folded_w4a4_qdrop": (None, 50.0), "mobilenet_v2_folded_w4a4_qdrop_seed1005": (1005, 50.0),
            "mobilenet_v2_folded_w4a4_qdrop_seed1": (1, 52.0), "mobilenet_v2_folded_w4a4_qdrop_seed2": (2, 51.0),
            "mobilenet_v2_folded_w2a4_qdrop": (None, 30.0)}
    for i, (name, (seed, top1)) in enumerate(runs.items()):
        bits = (2, 4) if "w2a4" in name else (4, 4)
        write(sweep / name, results("mobilenet_v2_folded", "qdrop", *bits, top1, fp=79.0 if i == 0 else None))
        assert seeds.seeded_job(name.rsplit("_seed", 1)[0], seed) == name
        jobs[name] = {"name": name, "state": "done", "label": "qdrop", "threads": 1,
                      "started": "2026-12-01T10:00:00", "finished": f"2026-12-01T10:0{i + 1}:00"}
    jobs["mobilenet_v2_folded_w4a4_qdrop_seed3"] = {"name": "x", "state": "failed", "reason": "interrupted"}
    jobs["mobilenet_v2_folded_w3a3_qdrop"] = {"name": "y", "state": "failed", "reason": "out of memory"}
    (sweep / "status.json").write_text(json.dumps({"jobs": jobs}))

    spreads = seeds.write_spreads(str(sweep))
    assert json.loads((sweep / "seeds.json").read_text()) == spreads
    assert list(spreads) == ["mobilenet_v2_folded/w4a4/qdrop"]  # the failed seed is left out
    c = spreads["mobilenet_v2_folded/w4a4/qdrop"]
    assert c["seeds"] == [1005, 1, 2] and c["top1_per_seed"] == [50.0, 52.0, 51.0] and c["threads"] == [1]
    assert c["top1"] == {"n": 3, "mean": 51.0, "std": 1.0, "min": 50.0, "max": 52.0}
    assert c["time_s"] == {"n": 3, "mean": 180.0, "std": 60.0, "min": 120.0, "max": 240.0}  # the jobs' wall times
    out = capsys.readouterr().out
    assert "| mobilenet_v2_folded/w4a4/qdrop | 51.00 ± 1.00 (50.00–52.00, n=3) | 50.00 / 52.00 / 51.00 | " \
           "180 ± 60 (120–240, n=3) | 1 |" in out

    cells, notes = seeds.grid_cells(str(sweep))
    assert sorted(os.path.basename(os.path.dirname(c.source)) for c in cells) == [
        "mobilenet_v2_folded_w2a4_qdrop", "mobilenet_v2_folded_w4a4_qdrop"]
    assert notes == ["mobilenet_v2_folded_w3a3_qdrop: failed: out of memory"]
    text = make_report(cells=cells, notes=notes)
    assert "| W4A4 | QDrop | 50.00 (-29.00) |" in text and "| W2A4 | QDrop | 30.00 (-49.00) |" in text
    assert seeds.grid_cells(str(tmp_path / "none")) == ([], [f"no such file or folder: {tmp_path / 'none'}"])


def test_cell_seeds_record_grows_without_rewriting_earlier_runs(tmp_path):
    """benchmarks/cell_seeds.py: the seeded jobs of a sweep join the committed record; runs it already holds
    (earlier sessions') stay as they are, and each cell's spread is taken over all of its runs."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import cell_seeds

    sweep = tmp_path / "recon_grid"
    jobs = {}
    for i, (seed, top1) in enumerate([(1005, 50.0), (1, 52.0), (2, 99.0)]):
        name = f"mobilenet_v2_folded_w4a4_brecq_seed{seed}"
        write(sweep / name, results("mobilenet_v2_folded", "brecq", 4, 4, top1))
        jobs[name] = {"name": name, "state": "done", "threads": 1,
                      "started": "2026-12-01T10:00:00", "finished": f"2026-12-01T10:0{i + 1}:00"}
    (sweep / "status.json").write_text(json.dumps({"jobs": jobs}))
    record = {"what": "kept", "cells": {"mobilenet_v2_folded/w4a4/brecq": {"runs": {"2": {"top1": 51.0}}}}}

    added = cell_seeds.collect(record, [str(sweep), str(tmp_path / "missing")], "main (abc)")
    assert added == ["mobilenet_v2_folded/w4a4/brecq/1005", "mobilenet_v2_folded/w4a4/brecq/1"]
    cell = record["cells"]["mobilenet_v2_folded/w4a4/brecq"]
    assert list(cell["runs"]) == ["1005", "1", "2"] and cell["runs"]["2"] == {"top1": 51.0}
    assert cell["runs"]["1"]["wall_s"] == 120.0 and cell["runs"]["1"]["run"] == \
        "main (abc), benchmarks/recon_grid.py through the sweep"
    assert cell["top1"] == {"n": 3, "mean": 51.0, "std": 1.0, "min": 50.0, "max": 52.0}
    assert record["what"] == "kept" and cell_seeds.collect(record, [str(sweep)], "again") == []
