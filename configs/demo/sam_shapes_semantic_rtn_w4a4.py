# SAM semantic demo: round-to-nearest on PTQ4SAM's placement, W4A4, of the small SAM trained here on synthetic
# shapes (data/demo/sam_shapes; not SAM) through Semantic Segment Anything on the seg_shapes scenes, the masks voted
# on the demo's full-precision ShapesSegNet (configs/_base_/datasets/seg_shapes_sam.py). Only the SAM is quantized.
# Ranges from 16 calibration images with 16 point prompts each; 8x8 points per image at evaluation (about a minute
# on one thread).
# The SAM is sam_tiny_shapes_points.pth, the demo SAM fine-tuned for single-point prompts (tools/make_sam_points_demo.py;
# the box-trained sam_tiny_shapes.pth gives no usable point-prompted masks).
# Small models trained here on synthetic data.
_base_ = ['../_base_/models/sam_tiny_shapes.py', '../_base_/datasets/seg_shapes_sam.py',
          '../_base_/quant/sam_default.py', '../_base_/methods/rtn.py']
model = dict(weights='data/demo/sam_shapes/sam_tiny_shapes_points.pth')
quant = dict(w_bits=4, a_bits=4)
