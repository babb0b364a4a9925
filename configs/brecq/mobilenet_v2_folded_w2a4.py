# BRECQ MobileNetV2 (BN-folded, ../shared/data) W2A4 on the real assets of ../shared/data: calibration on
# imagenet_sample_1000_r256, evaluation on all 1300 images of imagenet_val_subset_1300. Paper
# iterations; benchmarks/recon_grid.py runs the CPU protocol with --cfg-options.
# lambda 0.1 as for MobileNetV2 (EfficientNet-Lite0 is built of the same inverted residuals).
_base_ = ['../_base_/models/mobilenet_v2_folded.py', '../_base_/datasets/shared_imagenet.py',
          '../_base_/quant/cnn_default.py', '../_base_/methods/brecq.py']
quant = dict(w_bits=2, a_bits=4, stem_output_8bit=True)  # BRECQ keeps the first layer's output at 8 bit
recon = dict(round_lambda=0.1)
