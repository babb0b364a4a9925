# PD-Quant EfficientNet-Lite0 W4A4 on the real assets of ../shared/data: calibration on
# imagenet_sample_1000_r256, evaluation on all 1300 images of imagenet_val_subset_1300. Paper iterations;
# benchmarks/pdquant_grid.py runs the CPU protocol with --cfg-options. EfficientNet-Lite0 is built of
# MobileNetV2's inverted residuals, so it takes MobileNetV2's settings: T = 1, lambda_c = 0.005, lambda 0.1.
_base_ = ['../_base_/models/efficientnet_lite0.py', '../_base_/datasets/shared_imagenet.py',
          '../_base_/quant/cnn_default.py', '../_base_/methods/pdquant.py']
quant = dict(w_bits=4, a_bits=4)
recon = dict(round_lambda=0.1, pd_temperature=1.0, dc_lambda=0.005)
