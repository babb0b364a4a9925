# RepQ-ViT ViT-B W3A3 (timm weights, ImageNet; FP 84.54).
# RepQ-ViT reports no W3A3 number for ViT-B (REFERENCE.md section 4).
# Calibration only: 32 ImageNet training images (seed 1005), LayerNorm reparameterisation and the
# log√2 softmax from the method's preset, q/k/A/v per tensor (see ../_base_/methods/repqvit.py).
_base_ = ['../_base_/models/vit_base.py', '../_base_/datasets/imagenet.py',
          '../_base_/quant/vit_default.py', '../_base_/methods/repqvit.py']
quant = dict(w_bits=3, a_bits=3)
calib = dict(num_samples=32, seed=1005, batch_size=32)
