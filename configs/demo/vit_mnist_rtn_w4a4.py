# Transformer demo: round-to-nearest W4A4 on the MNIST toy ViT (an MNIST toy model with real weights trained
# on MNIST, from pytorch/ios-demo-app, data/demo/README.md; NOT an ImageNet result), with the same
# vision-transformer placement as vit_mnist_qdrop_w4a4.py (every Linear input-quantized, q/k/A/v quantized,
# AGQ log2 softmax): the baseline that the reconstruction methods must beat. Calibration only.
_base_ = ['../_base_/models/vit_mnist_tiny.py', '../_base_/datasets/demo_mnist.py',
          '../_base_/quant/vit_default.py', '../_base_/methods/rtn.py']
quant = dict(w_bits=4, a_bits=4, softmax='agq')
