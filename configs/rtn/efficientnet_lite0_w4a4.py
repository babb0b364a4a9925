# RTN W4A4 on the real efficientnet_lite0; calibration on ../shared/data/imagenet_sample_1000_r256, evaluation on all
# 1300 images of ../shared/data/imagenet_val_subset_1300 (benchmarks/rtn_grid.py).
_base_ = ['../_base_/models/efficientnet_lite0.py', '../_base_/datasets/shared_imagenet.py',
          '../_base_/quant/cnn_default.py', '../_base_/methods/rtn.py']
quant = dict(w_bits=4, a_bits=4)
