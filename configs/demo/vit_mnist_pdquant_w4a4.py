# Transformer demo: PD-Quant W4A4 on the MNIST toy ViT (an MNIST toy model with real weights trained on
# MNIST, from pytorch/ios-demo-app, data/demo/README.md; NOT an ImageNet result), with the placement of
# vit_mnist_qdrop_w4a4.py (every Linear input-quantized, q/k/A/v quantized, AGQ log2 softmax): QDrop plus
# the prediction-difference loss (T = 1, lambda_r = 0.1: our choice, the paper has no transformer setting)
# and activation re-initialisation; no distribution correction (recon.dc=False: a transformer has no
# BatchNorm, so it is refused). Sized for a CPU like the QDrop demo: 256 calibration digits, 200
# iterations per block (the paper: 20 000), lr 1e-2 for rounding.
_base_ = ['../_base_/models/vit_mnist_tiny.py', '../_base_/datasets/demo_mnist.py',
          '../_base_/quant/vit_default.py', '../_base_/methods/pdquant.py']
quant = dict(w_bits=4, a_bits=4, softmax='agq')
recon = dict(iters=200, weight_lr=1e-2, round_lambda=0.01, pd_loss=True, pd_temperature=1.0, pd_lambda=0.1,
             dc=False)
