# PD-Quant ResNet-18 W2A2: paper protocol (1024 ImageNet training images, seed 1005, batch 32,
# 20 000 iterations per unit, AdaRound lr 3e-3) with the published settings for ResNet-18:
# T = 4, lambda_r = 0.1, lambda_c = 0.02, AdaRound lambda 0.01.
_base_ = ['../_base_/models/resnet18.py', '../_base_/datasets/imagenet.py',
          '../_base_/quant/cnn_default.py', '../_base_/methods/pdquant.py']
quant = dict(w_bits=2, a_bits=2)
recon = dict(round_lambda=0.01, pd_temperature=4.0, dc_lambda=0.02)
