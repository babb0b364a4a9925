# RTN W8A8 on the real mobilenet_v2_folded; calibration on ../shared/data/imagenet_sample_1000_r256, evaluation on all
# 1300 images of ../shared/data/imagenet_val_subset_1300 (benchmarks/rtn_grid.py).
_base_ = ['../_base_/models/mobilenet_v2_folded.py', '../_base_/datasets/shared_imagenet.py',
          '../_base_/quant/cnn_default.py', '../_base_/methods/rtn.py']
quant = dict(w_bits=8, a_bits=8)
