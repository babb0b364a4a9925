# Demo: round-to-nearest W8A8 on the real ImageNet-pretrained EfficientNet-Lite0 with the embedded demo
# images (128 calibration, 300 evaluation). Finishes in about a minute on 2 CPU cores.
_base_ = ['../_base_/models/efficientnet_lite0.py', '../_base_/datasets/demo.py',
          '../_base_/quant/cnn_default.py', '../_base_/methods/rtn.py']
quant = dict(w_bits=8, a_bits=8)
