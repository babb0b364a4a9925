# SAM demo: PTQ4SAM (QDrop + Bimodal Integration + AGQ), W4A4, of a small SAM trained here on synthetic shapes
# (data/demo/sam_shapes; not SAM, and not COCO), with a simulated detector's boxes as prompts. Sized for a CPU: 32
# calibration images, 150 iterations per unit instead of the paper's 20 000, so the AdaRound lr is 1e-2 instead of
# 1e-3.
_base_ = ['../_base_/models/sam_tiny_shapes.py', '../_base_/datasets/sam_shapes.py',
          '../_base_/quant/sam_default.py', '../_base_/methods/ptq4sam.py']
quant = dict(w_bits=4, a_bits=4)
recon = dict(iters=150, weight_lr=1e-2, round_lambda=0.01)
