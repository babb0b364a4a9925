# SAM semantic demo: QDrop on PTQ4SAM's placement and units (uniform softmax, no BIG), W4A4, of the small SAM trained
# here on synthetic shapes (data/demo/sam_shapes; not SAM) through Semantic Segment Anything on the seg_shapes
# scenes, the masks voted on the demo's full-precision ShapesSegNet (configs/_base_/datasets/seg_shapes_sam.py).
# Only the SAM is quantized. Sized for a CPU (under 2 minutes on one thread): 16 calibration images with 16 point
# prompts each, 100 iterations per unit instead of the paper's 20 000, so the AdaRound lr is 1e-2 instead of 1e-3;
# 8x8 points per image at evaluation.
# The SAM is sam_tiny_shapes_points.pth, the demo SAM fine-tuned for single-point prompts (tools/make_sam_points_demo.py;
# the box-trained sam_tiny_shapes.pth gives no usable point-prompted masks).
# Small models trained here on synthetic data.
_base_ = ['../_base_/models/sam_tiny_shapes.py', '../_base_/datasets/seg_shapes_sam.py',
          '../_base_/quant/sam_default.py', '../_base_/methods/qdrop.py']
model = dict(weights='data/demo/sam_shapes/sam_tiny_shapes_points.pth')
quant = dict(w_bits=4, a_bits=4)
recon = dict(partition='sub_block', batch_size=1, iters=100, weight_lr=1e-2, round_lambda=0.01, act_lr=4e-5)
