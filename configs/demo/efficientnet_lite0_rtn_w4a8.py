# Demo: round-to-nearest W4A8 on the real EfficientNet-Lite0 with the embedded demo images.
_base_ = ['../_base_/models/efficientnet_lite0.py', '../_base_/datasets/demo.py',
          '../_base_/quant/cnn_default.py', '../_base_/methods/rtn.py']
quant = dict(w_bits=4, a_bits=8)
