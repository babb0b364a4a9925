# RepQ-ViT DeiT-S W6A6 (timm weights, ImageNet; FP 79.85).
# Published RepQ-ViT DeiT-S W6A6: 78.90 (REFERENCE.md section 4).
# Calibration only: 32 ImageNet training images (seed 1005), LayerNorm reparameterisation and the
# log√2 softmax from the method's preset, q/k/A/v per tensor (see ../_base_/methods/repqvit.py).
_base_ = ['../_base_/models/deit_small.py', '../_base_/datasets/imagenet.py',
          '../_base_/quant/vit_default.py', '../_base_/methods/repqvit.py']
quant = dict(w_bits=6, a_bits=6)
calib = dict(num_samples=32, seed=1005, batch_size=32)
