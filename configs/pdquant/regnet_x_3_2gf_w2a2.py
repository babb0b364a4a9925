# PD-Quant RegNetX-3.2GF W2A2: paper protocol (1024 ImageNet training images, seed 1005, batch 32,
# 20 000 iterations per unit, AdaRound lr 3e-3) with the published settings for RegNetX-3.2GF:
# T = 4, lambda_r = 0.1, lambda_c = 0.01, AdaRound lambda 0.01.
_base_ = ['../_base_/models/regnet_x_3_2gf.py', '../_base_/datasets/imagenet.py',
          '../_base_/quant/cnn_default.py', '../_base_/methods/pdquant.py']
quant = dict(w_bits=2, a_bits=2)
recon = dict(round_lambda=0.01, pd_temperature=4.0, dc_lambda=0.01)
