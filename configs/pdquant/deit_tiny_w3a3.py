# PD-Quant DeiT-T W3A3 (timm weights, ImageNet; FP 72.21).
# No published PD-Quant number for vision transformers.
# The PD-Quant paper has no ViT setting, so T = 1 and lambda_r = 0.1 are our choice (AdaRound lr 3e-3 from the
# PD-Quant base). recon.dc=False: transformers have no BatchNorm, so distribution correction is refused.
# Protocol (REFERENCE.md section 4, APHQ-ViT/FIMA-Q): the papers calibrate on 128 images and reconstruct on
# 1024; this framework uses one calibration set, so 1024 ImageNet training images (seed 1005) serve both;
# batch 32, 20 000 iterations per unit, activation lr 4e-5, rounding lambda 0.01, QDrop p 0.5.
# Units (recon.partition='block'): PatchEmbed, each transformer block, each Swin PatchMerging, the head;
# --cfg-options recon.partition=sub_block reconstructs attention and MLP sub-blocks instead.
# Post-softmax quantizer: uniform (the APHQ/FIMA-Q placement); switch from the command line with
# --cfg-options quant.softmax=agq (or log2, log_sqrt2).
_base_ = ['../_base_/models/deit_tiny.py', '../_base_/datasets/imagenet.py',
          '../_base_/quant/vit_default.py', '../_base_/methods/pdquant.py']
quant = dict(w_bits=3, a_bits=3, softmax='uniform')
calib = dict(num_samples=1024, seed=1005, batch_size=32)
recon = dict(partition='block', iters=20000, batch_size=32, round_lambda=0.01, act_lr=4e-5,
             pd_temperature=1.0, pd_lambda=0.1, dc=False)
