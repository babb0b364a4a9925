# PD-Quant MobileNetV2 (BN-folded, ../shared/data) W2A4: calibration on imagenet_sample_1000_r256,
# evaluation on all 1300 images of imagenet_val_subset_1300. Paper iterations; benchmarks/pdquant_grid.py
# runs the CPU protocol with --cfg-options. MobileNetV2's settings (T = 1, lambda 0.1), but no distribution
# correction: this checkpoint has its BatchNorms folded into the weights, so there are no BN statistics to
# match.
_base_ = ['../_base_/models/mobilenet_v2_folded.py', '../_base_/datasets/shared_imagenet.py',
          '../_base_/quant/cnn_default.py', '../_base_/methods/pdquant.py']
quant = dict(w_bits=2, a_bits=4)
recon = dict(round_lambda=0.1, pd_temperature=1.0, dc=False)
