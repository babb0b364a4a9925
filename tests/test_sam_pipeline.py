"""SAM through the command line on a generated COCO-format shapes set: ptq4sam W4A4 end to end (BIG and AGQ
recorded, the COCO protocol recorded), a run killed half-way resumes to the same numbers, and tools/test.py
reproduces the quantized segm mAP from the checkpoint alone."""
import json
import os
import sys

import ptqvision  # noqa: F401
import pytest
import torch

from ptqvision.data.shapes import SceneConfig, write_coco_split, write_detections

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import quant as quant_cli  # noqa: E402
import test as test_cli  # noqa: E402
from conftest import killed_after_units  # noqa: E402


@pytest.fixture(scope="module")
def shapes_config(tmp_path_factory) -> str:
    """A config: a small random-weight SAM (sam_tiny, two encoder blocks), 3 calibration and 2 val images."""
    root = tmp_path_factory.mktemp("shapes")
    scenes = SceneConfig(sizes=((128, 128), (96, 128)), max_objects=3)
    for split, n, seed in (("train", 3, 1), ("val", 2, 2)):
        gt = write_coco_split(root, split, n, seed, scenes)
        write_detections(gt, root / f"detections_{split}.json", seed)
    cfg = root / "sam_shapes.py"
    cfg.write_text(f"""
_base_ = ['{ROOT}/configs/_base_/quant/sam_default.py', '{ROOT}/configs/_base_/methods/ptq4sam.py']
model = dict(type='sam', name='sam_tiny', weights='random', seed=0,
             kwargs=dict(image_size=128, encoder_depth=2, encoder_global_attn_indexes=[1], window_size=4))
task = dict(type='coco_instance', prompt_chunk=2)
data = dict(calib=dict(type='coco', root='{root}/train', ann_file='{root}/instances_train.json',
                       det_file='{root}/detections_train.json'),
            val=dict(type='coco', root='{root}/val', ann_file='{root}/instances_val.json',
                     det_file='{root}/detections_val.json'))
calib = dict(num_samples=3, seed=1005, batch_size=1)
quant = dict(w_bits=4, a_bits=4)
recon = dict(iters=2, weight_lr=1e-2)
eval = dict(progress=False)
""")
    return str(cfg)


def test_sam_run_killed_half_way_resumes_and_test_py_reproduces(shapes_config, tmp_path, capsys):
    work = tmp_path / "work"
    assert quant_cli.main([shapes_config, "--work-dir", str(work)]) == 0
    results = json.loads((work / "results.json").read_text())
    assert results["adapter"] == "sam" and results["method"] == "ptq4sam" and results["task"] == "coco_instance"
    assert set(results["metrics"]["quant"]) >= {"segm_mAP", "segm_mAP_50", "segm_mAP_75"}
    assert results["reconstruction"]["units"] == 2 * 2 + 1 + 9
    assert results["quant"]["softmax"] == "agq" and results["quant"]["bimodal_integration"] is True
    big = results["calibration"]["bimodal_integration"]
    assert len(big) == 3 and all({"bimodal", "flipped", "peaks"} <= set(r) for r in big)
    assert len(results["calibration"]["softmax_tau"]) == 2 + 7
    assert (work / "big_keys.png").is_file()
    protocol = json.dumps(results["data"])
    assert "sha256" in protocol and "max_dets" in protocol
    killed = tmp_path / "killed"
    with killed_after_units(6):
        assert quant_cli.main([shapes_config, "--work-dir", str(killed)]) == 130
    assert quant_cli.main([shapes_config, "--work-dir", str(killed), "--resume"]) == 0
    assert "continues at stage 0, unit 6" in (killed / "run.log").read_text()
    assert json.loads((killed / "results.json").read_text())["metrics"] == results["metrics"]
    a = torch.load(work / "quantized.pth", weights_only=True)["state_dict"]
    b = torch.load(killed / "quantized.pth", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    capsys.readouterr()
    assert test_cli.main([shapes_config, str(work / "quantized.pth")]) == 0
    assert "reproduced exactly" in capsys.readouterr().out


def test_bad_detector_file_fails_in_one_line_before_quantization(shapes_config, tmp_path, capsys):
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    code = quant_cli.main([shapes_config, "--work-dir", str(tmp_path / "w"), "--cfg-options",
                           f"data.val.det_file={empty}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and "empty" in err[0]
    assert not (tmp_path / "w" / "results.json").exists()
