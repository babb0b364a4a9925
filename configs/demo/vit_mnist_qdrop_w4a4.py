# Transformer demo: QDrop W4A4 on the MNIST toy ViT (real weights trained on MNIST; NOT an ImageNet result),
# with the vision-transformer placement: every Linear input-quantized, q/k/A/v quantized, AGQ log2 softmax.
# Sized for a CPU: 256 calibration digits, 200 iterations per block (the paper: 20 000), lr 1e-2 for rounding.
_base_ = ['../_base_/models/vit_mnist_tiny.py', '../_base_/datasets/demo_mnist.py',
          '../_base_/quant/vit_default.py', '../_base_/methods/qdrop.py']
quant = dict(w_bits=4, a_bits=4, softmax='agq')
recon = dict(iters=200, weight_lr=1e-2, round_lambda=0.01)
