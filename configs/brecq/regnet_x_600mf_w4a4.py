# BRECQ RegNetX-600MF W4A4: paper protocol (1024 ImageNet training images, seed 1005, batch 32,
# 20 000 iterations per unit, lambda 0.01 for RegNetX-600MF).
_base_ = ['../_base_/models/regnet_x_600mf.py', '../_base_/datasets/imagenet.py',
          '../_base_/quant/cnn_default.py', '../_base_/methods/brecq.py']
quant = dict(w_bits=4, a_bits=4, stem_output_8bit=True)  # BRECQ keeps the first layer's output at 8 bit
recon = dict(round_lambda=0.01)
