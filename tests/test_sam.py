"""The SAM adapter (PTQ4SAM's placement and units): coverage and the full-precision list on SAM-B, the twin and
its schedule keep the FP output, Bimodal Integration (detection and equivalence), AGQ on decoder maps,
reconstruction with prompts as rows (traps 1 and 2: every drop probability 1 and every rounding hard at
evaluation, in every unit), chunked steps, and the refusal of ops outside the rules."""
import types
from collections import Counter

import ptqvision  # noqa: F401  (before segment_anything / torchvision)
import pytest
import torch
from torch import nn

from ptqvision.errors import ConfigError, InvariantError, UnsupportedLayerError
from ptqvision.methods import PRESETS
from ptqvision.models import adapter_for, build_model
from ptqvision.models.sam_adapter import SamAdapter
from ptqvision.models.schedule import run_items, unit_items, unit_quantizers
from ptqvision.nn import QuantConfig, check_ready, placement
from ptqvision.nn.big import channel_signs, fold_signs, key_density
from ptqvision.nn.calibrate import quantization_off
from ptqvision.nn.ops import quant_ops
from ptqvision.quant import AdaRoundQuantizer, Log2Quantizer
from ptqvision.quant.log2 import log2_fake_quantize
from ptqvision.recon import ReconSettings, reconstruct


def tiny_sam(**kwargs) -> nn.Module:
    model, _ = build_model(dict(type="sam", name="sam_tiny", weights="random", seed=0, kwargs=kwargs))
    return model


def qcfg(**kw) -> QuantConfig:
    return QuantConfig(**{"w_bits": 4, "a_bits": 4, "head_stem_8bit": False, "softmax": "agq",
                          "bimodal_integration": False, "a_observer": "avg_minmax", "w_observer": "minmax", **kw})


def batches(n: int = 3, size: int = 256, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Calibration batches as the COCO task gives them: one image and its boxes (1, 3, 2, ... prompts)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        p = [1, 3, 2, 4][i % 4]
        xy = torch.rand(p, 2, generator=g) * size * 0.6
        wh = torch.rand(p, 2, generator=g) * size * 0.3 + 8
        out.append((torch.randn(1, 3, size, size, generator=g), torch.cat([xy, xy + wh], 1)))
    return out


def test_placement_on_sam_b_counts_every_quantizer_and_lists_the_fp_parts():
    model, pre = build_model(dict(type="sam", name="sam_vit_b", weights="random"))
    assert pre["longest_side"] == 1024 and isinstance(adapter_for(model), SamAdapter)
    twin = SamAdapter().quantize(model, qcfg(bimodal_integration=True))
    rows = placement(twin)
    kinds = Counter((r["kind"], r["type"]) for r in rows)
    # weights: 12 encoder blocks x (qkv, proj, lin1, lin2) + 2 neck convs + decoder 7 attentions x 4 + 2 MLPs x 2
    assert kinds[("weight", "uniform")] == 12 * 4 + 2 + 7 * 4 + 2 * 2 == 82
    # softmax (AGQ): 12 encoder + 7 decoder attentions
    assert kinds[("act", "log2")] == 19
    # inputs of those 82 layers + q, k, v of 19 attentions
    assert kinds[("act", "uniform")] == 82 + 3 * 19
    assert all(r["bits"] == 4 for r in rows)  # everything at the config's bits: no 8-bit first/last layer
    names = {r["name"] for r in rows}
    assert "image_encoder.blocks.0.attn.q_quantizer" in names and "image_encoder.neck.2.input_quantizer" in names
    assert not any(n.startswith(("image_encoder.patch_embed", "prompt_encoder", "mask_decoder.output_", "mask_decoder.iou"))
                   for n in names)
    fp = {r["name"] for r in SamAdapter().full_precision(twin)}
    for part in ("image_encoder.patch_embed", "image_encoder.pos_embed", "prompt_encoder", "mask_decoder.iou_token",
                 "mask_decoder.mask_tokens", "mask_decoder.output_upscaling", "mask_decoder.output_hypernetworks_mlps",
                 "mask_decoder.iou_prediction_head", "mask_decoder.mask_product", "image_encoder.blocks.0.norm1",
                 "image_encoder.neck.1", "image_encoder.blocks.0.attn.rel_pos", "mask_decoder.transformer.norm_final_attn"):
        assert part in fp, part
    assert len(SamAdapter().schedule(twin).units) == 12 * 2 + 1 + 2 * 4 + 1


def test_twin_and_schedule_keep_the_fp_output():
    model = tiny_sam()
    twin = SamAdapter().quantize(model, qcfg())
    image, boxes = batches(4)[3]
    with torch.no_grad():
        ref_masks, ref_iou = model(image, boxes)
        with quantization_off(twin):
            masks, iou = twin(image, boxes)
            for mode in ("sub_block", "layer"):
                sched = SamAdapter().schedule(twin, mode)
                s_masks, s_iou = run_items(sched.items, {"image": image, "prompts": boxes}, sched.output)
                assert torch.allclose(s_masks, ref_masks, atol=1e-4) and torch.allclose(s_iou, ref_iou, atol=1e-5)
    assert masks.shape == (4, 1, 64, 64) and iou.shape == (4, 1)
    assert torch.allclose(masks, ref_masks, atol=1e-4) and torch.allclose(iou, ref_iou, atol=1e-5)


def test_point_prompts_and_multimask_outputs_match_segment_anything():
    """The prompts of segment-anything's automatic mask generator: single foreground points, three masks each."""
    from segment_anything import SamPredictor

    from ptqvision.models.sam import SamPredictorView

    model = tiny_sam()
    twin = SamAdapter().quantize(model, qcfg())
    image = (torch.rand(200, 256, 3) * 255).to(torch.uint8).numpy()
    points = torch.tensor([[[30.0, 40.0]], [[120.0, 100.0]]])
    out = {}
    for name, m in (("fp", model), ("twin", twin)):
        predictor = SamPredictor(SamPredictorView(m))
        with torch.no_grad(), quantization_off(twin):
            predictor.set_image(image)
            pts = predictor.transform.apply_coords_torch(points, image.shape[:2])
            out[name] = predictor.predict_torch(pts, torch.ones(2, 1), multimask_output=True, return_logits=True)
    assert out["fp"][0].shape == (2, 3, 200, 256)
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(out["fp"], out["twin"]))
    with torch.no_grad():  # the same points through SamBoxModel.decode (the calibration path)
        _, iou = model.decode(predictor.features, pts[:, 0], multimask_output=True)
    assert torch.allclose(iou, out["twin"][1], atol=1e-5)


def test_units_take_queries_keys_and_their_encodings():
    twin = SamAdapter().quantize(tiny_sam(), qcfg())
    sched = SamAdapter().schedule(twin)
    by_name = {it.unit.name: it for it in unit_items(sched)}
    t2i = by_name["mask_decoder.transformer.layers.1.cross_attn_token_to_image"]
    assert t2i.inputs == ["qa1", "k1", "tokens"]  # queries, keys, the queries' encoding (the keys' is the image's)
    assert by_name["mask_decoder.transformer.layers.0.self_attn"].inputs == ["tokens"]  # first layer: no encoding
    layers, acts = unit_quantizers(t2i)
    assert len(layers) == 4 and len(acts) == 8  # 4 projections; their inputs, q, k, v and the softmax
    assert all(u.loss_dim == -1 for u in sched.units)  # PTQ4SAM's loss sums over the last dim
    with pytest.raises(ConfigError, match="recon.partition"):
        SamAdapter().schedule(twin, "block")


def test_kde_peak_test_tells_bimodal_from_unimodal():
    g = torch.Generator().manual_seed(0)
    # keys as in SAM's token-to-image attention: some channels around +2, the others around -2
    means = torch.where(torch.arange(32) % 3 == 0, 2.0, -2.0)
    bimodal = means + 0.4 * torch.randn(256, 32, generator=g)
    unimodal = 0.4 * torch.randn(256, 32, generator=g) + 1.0
    d = key_density(bimodal)
    assert d.bimodal and len(d.peaks) == 2
    assert sorted(round(v) for v in d.peak_values()) == [-2, 2]
    assert not key_density(unimodal).bimodal and len(key_density(unimodal).peaks) == 1
    signs = channel_signs(bimodal)
    assert torch.equal(signs, torch.where(means > 0, 1.0, -1.0))
    folded = key_density(bimodal * signs)
    assert not folded.bimodal  # the sign fold merges the two peaks


def test_channel_with_zero_mean_keeps_its_sign():
    keys = torch.tensor([[1.0, -1.0, -3.0], [-1.0, 1.0, 1.0]])  # channel means 0, 0, -1
    assert channel_signs(keys).tolist() == [1.0, 1.0, -1.0]


def test_sign_fold_keeps_every_logit_and_the_decoder_output():
    torch.manual_seed(0)
    model = tiny_sam()
    attn = model.mask_decoder.transformer.layers[0].cross_attn_token_to_image
    q, k = torch.randn(3, 7, 64), torch.randn(3, 20, 64)
    signs = torch.where(torch.rand(attn.internal_dim) < 0.5, -1.0, 1.0)
    ref = attn.q_proj(q) @ attn.k_proj(k).transpose(1, 2)
    image, boxes = batches(2)[1]
    with torch.no_grad():
        out_ref = model(image, boxes)
        fold_signs(attn.q_proj, attn.k_proj, signs)
        assert torch.equal(attn.q_proj(q) @ attn.k_proj(k).transpose(1, 2), ref)  # exact: sign flips only
        out = model(image, boxes)
    assert all(torch.equal(a, b) for a, b in zip(out, out_ref))


def test_bimodal_integration_is_recorded_plotted_and_keeps_the_fp_output(tmp_path):
    model = tiny_sam()
    # make the first token-to-image keys bimodal: a large bias of alternating sign on k_proj
    attn = model.mask_decoder.transformer.layers[0].cross_attn_token_to_image
    with torch.no_grad():
        attn.k_proj.bias.copy_(torch.where(torch.arange(attn.internal_dim) % 2 == 0, 3.0, -3.0))
    twin = SamAdapter().quantize(model, qcfg(bimodal_integration=True))
    data = batches(3)
    with torch.no_grad(), quantization_off(twin):
        before = twin(*data[1])
    record = SamAdapter().calibrate(twin, data, torch.device("cpu"), progress=False, work_dir=str(tmp_path))
    rows = {r["attention"]: r for r in record["bimodal_integration"]}
    assert set(rows) == {"mask_decoder.transformer.layers.0.cross_attn_token_to_image",
                         "mask_decoder.transformer.layers.1.cross_attn_token_to_image",
                         "mask_decoder.transformer.final_attn_token_to_image"}
    first = rows["mask_decoder.transformer.layers.0.cross_attn_token_to_image"]
    assert first["bimodal"] and first["flipped"] == attn.internal_dim // 2 and len(first["peaks_after"]) == 1
    assert (tmp_path / "big_keys.png").stat().st_size > 0
    with torch.no_grad(), quantization_off(twin):
        after = twin(*data[1])
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(after, before))
    taus = record["softmax_tau"]
    assert len(taus) == 4 + 7 and set(taus.values()) <= {1, 2, 4}


def test_agq_on_decoder_softmax_maps_picks_the_least_error_after_v():
    model = tiny_sam()
    twin = SamAdapter().quantize(model, qcfg())
    maps = []
    soft = twin.mask_decoder.transformer.layers[1].cross_attn_image_to_token.softmax
    handle = soft.register_forward_hook(lambda m, args, out: maps.append((out.detach(), args[1].detach())))
    with torch.no_grad(), quantization_off(twin):
        for image, boxes in batches(3):
            twin(image, boxes)
    handle.remove()
    q = Log2Quantizer(bits=4, mode="agq", max_rows=None)
    q.start_observing()
    for a, v in maps:
        q(a, partner=v)
    q.finish_observing()
    errors = q.search_record["errors"]
    assert q.chosen_tau == min(errors, key=errors.get)

    def err(tau: int, s: float) -> float:
        return sum(float((log2_fake_quantize(a, s, tau, 15) @ v - a @ v).abs().pow(2.4).mean()) for a, v in maps)

    # the searched scale is at least as good as the best of a fine grid for the chosen τ, within 5 %
    hi = max(float(a.max()) for a, _ in maps)
    grid = [hi * 10 ** (-2 * i / 200) for i in range(201)]
    best = min(err(q.chosen_tau, s) for s in grid)
    assert err(q.chosen_tau, float(q.scale)) <= 1.05 * best


def settings(**kw) -> ReconSettings:
    return ReconSettings.from_dict({**ReconSettings.defaults(), **PRESETS["ptq4sam"], "iters": 8, "batch_size": 1,
                                    "weight_lr": 1e-2, "checkpoint_units": False, **kw})


def test_reconstruction_leaves_every_unit_hard_rounded_and_never_dropping():
    """Traps 1 and 2 of PTQ4SAM's code: input quantizers kept dropping half their activations at evaluation,
    and only the first Linear of each unit was hardened."""
    twin = SamAdapter().quantize(tiny_sam(), qcfg())
    data = batches(3)
    SamAdapter().calibrate(twin, data, torch.device("cpu"), progress=False)
    report = reconstruct(twin, data, settings(), "cpu", progress=False, schedule=SamAdapter().schedule(twin))
    assert len(report["per_unit"]) == 18 and all(r["iters"] == 8 for r in report["per_unit"])
    check_ready(twin)
    assert not any(isinstance(m, AdaRoundQuantizer) for m in twin.modules())  # every rounding hardened and baked
    for name, op in quant_ops(twin):
        if op.weights():  # every layer of every unit, not only the first: its weight lies on its grid
            w = op.weight.detach()
            assert torch.equal(op.quantizers()["weight"](w), w), name
    drops = {n: m.drop_prob for n, m in twin.named_modules() if hasattr(m, "drop_prob")}
    assert len(drops) == 144 and set(drops.values()) == {1.0}
    # an input quantizer left dropping is refused at evaluation
    twin.mask_decoder.transformer.layers[0].mlp.lin1.input_quantizer.drop_prob = 0.5
    with pytest.raises(InvariantError, match="drop probability"):
        check_ready(twin)


def test_chunked_steps_give_the_gradients_of_the_whole_batch():
    """recon.chunk_rows splits an image's prompts (or windows) into chunks and accumulates the gradients: with
    no drop (the only randomness of a step) the optimisation is the same as in one piece, up to float sums."""
    twin = SamAdapter().quantize(tiny_sam(), qcfg())
    data = batches(4)
    SamAdapter().calibrate(twin, data, torch.device("cpu"), progress=False)
    losses = {}
    for chunk in (None, 1):
        t = SamAdapter().quantize(tiny_sam(), qcfg())
        t.load_state_dict(twin.state_dict())
        rep = reconstruct(t, data, settings(iters=3, chunk_rows=chunk, drop_prob=1.0), "cpu", progress=False,
                          schedule=SamAdapter().schedule(t))
        losses[chunk] = [r["loss_after"] for r in rep["per_unit"]]
    assert losses[1] == pytest.approx(losses[None], rel=1e-3)
    with pytest.raises(ConfigError, match="chunk_rows"):
        settings(chunk_rows=0)


def test_recomputing_the_decoder_per_step_gives_the_numbers_of_the_cached_streams():
    """recon.recompute: the decoder's per-prompt values produced per step from the cached image embedding and
    boxes (what lets SAM-H with hundreds of boxes per image fit) instead of cached for every image."""
    twin = SamAdapter().quantize(tiny_sam(), qcfg())
    data = batches(3)
    SamAdapter().calibrate(twin, data, torch.device("cpu"), progress=False)
    runs = {}
    for mode in (False, True):
        t = SamAdapter().quantize(tiny_sam(), qcfg())
        t.load_state_dict(twin.state_dict())
        report = reconstruct(t, data, settings(iters=3, recompute=mode), "cpu", progress=False,
                             schedule=SamAdapter().schedule(t))
        assert report["recompute"] is mode
        runs[mode] = ([(r["loss_before"], r["loss_after"]) for r in report["per_unit"]], t.state_dict())
    assert runs[True][0] == runs[False][0]  # bit for bit: the same values, computed when needed
    assert all(torch.equal(runs[True][1][k], v) for k, v in runs[False][1].items())


def test_an_op_outside_the_rules_is_refused():
    model = tiny_sam()
    model.mask_decoder.transformer.layers[0].mlp.extra = nn.Linear(64, 64)
    with pytest.raises(UnsupportedLayerError, match="extra"):
        SamAdapter().quantize(model, qcfg())
    model = tiny_sam()
    # a matmul hidden in an FP module's neighbour: the final attention computes an extra product unquantized
    fin = model.mask_decoder.transformer.final_attn_token_to_image
    orig = type(fin).forward

    def leaky(self, q, k, v):
        return orig(self, q, k, v) + (q @ k.transpose(1, 2)).mean()

    fin.forward = types.MethodType(leaky, fin)
    with pytest.raises(UnsupportedLayerError, match="matmul in mask_decoder.transformer.final_attn_token_to_image"):
        SamAdapter().quantize(model, qcfg())
    cnn, _ = build_model(dict(type="torchvision", name="resnet18", weights="random", num_classes=10))
    with pytest.raises(ConfigError, match="bimodal_integration"):
        adapter_for(cnn).quantize(cnn, QuantConfig(bimodal_integration=True))
