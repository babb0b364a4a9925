# PD-Quant MnasNet-2.0 W4A2: paper protocol (1024 ImageNet training images, seed 1005, batch 32,
# 20 000 iterations per unit, AdaRound lr 3e-3) with the published settings for MnasNet-2.0:
# T = 1, lambda_r = 0.1, lambda_c = 0.001, AdaRound lambda 0.2.
_base_ = ['../_base_/models/mnasnet2_0.py', '../_base_/datasets/imagenet.py',
          '../_base_/quant/cnn_default.py', '../_base_/methods/pdquant.py']
quant = dict(w_bits=4, a_bits=2)
recon = dict(round_lambda=0.2, pd_temperature=1.0, dc_lambda=0.001)
