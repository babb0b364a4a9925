# Transformer demo: RepQ-ViT W4A4 on the MNIST toy ViT (an MNIST toy model with real weights trained on
# MNIST, from pytorch/ios-demo-app, data/demo/README.md; NOT an ImageNet result). Calibration only, as in
# the paper on 32 images (here 32 digits): LayerNorm reparameterisation and the log√2 softmax from the
# method's preset (quant.softmax and quant.ln_reparam left at None), q/k/A/v per tensor.
_base_ = ['../_base_/models/vit_mnist_tiny.py', '../_base_/datasets/demo_mnist.py',
          '../_base_/quant/vit_default.py', '../_base_/methods/repqvit.py']
quant = dict(w_bits=4, a_bits=4)
calib = dict(num_samples=32)
