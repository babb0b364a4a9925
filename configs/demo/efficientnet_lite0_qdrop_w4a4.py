# Demo: QDrop W4A4 on the real ImageNet-pretrained EfficientNet-Lite0 with the embedded demo images
# (64 of the 128 calibration images, 300 evaluation images), sized to finish in under 5 minutes on 2 CPU
# cores: 60 iterations per unit instead of the paper's 20 000, so the AdaRound lr is 1e-2 instead of 1e-3
# (on MobileNetV2 with 100 iterations this lifts W4A4 top-1 from 49.0 to 65.6; docs/benchmarks.md).
# Compare with efficientnet_lite0_rtn_w4a4.py (round-to-nearest, same bits).
_base_ = ['../_base_/models/efficientnet_lite0.py', '../_base_/datasets/demo.py',
          '../_base_/quant/cnn_default.py', '../_base_/methods/qdrop.py']
quant = dict(w_bits=4, a_bits=4)
calib = dict(num_samples=64)
recon = dict(iters=60, weight_lr=1e-2, round_lambda=0.1)
