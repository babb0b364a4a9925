# Demo: round-to-nearest W4A4 on EfficientNet-Lite0: the baseline that reconstruction methods must beat.
_base_ = ['../_base_/models/efficientnet_lite0.py', '../_base_/datasets/demo.py',
          '../_base_/quant/cnn_default.py', '../_base_/methods/rtn.py']
quant = dict(w_bits=4, a_bits=4)
