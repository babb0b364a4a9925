# DeepLabV3-MobileNetV3-Large W4A4, PD-Quant, on Pascal VOC 2012 val (configs/_base_/datasets/voc.py): point
# model.weights at your checkpoint and data.*.root at your VOC2012. Images at torchvision's scale (short side 520,
# the size its checkpoints were trained and evaluated at), logits compared at the label maps' own size.
# The CNN placement (BN folded, 8-bit stem and head, residual-add outputs quantized); 128 calibration crops of
# 512x512 from the train split. Another dataset: replace voc.py in _base_ by ade20k.py or cityscapes.py and set
# model.num_classes (150 / 19) with a checkpoint of that label set.
# PD-Quant: QDrop plus the per-pixel prediction difference through the full-precision rest of the network
# (KL over the classes at each pixel, averaged over pixels; T = 1, lambda_r 0.1: PD-Quant's setting for
# MobileNetV3 backbones, as it publishes no segmentation setting), activation re-initialisation, and
# distribution correction of each residual block's input on the un-fused model's BatchNorm statistics
# (lambda_c = 0.005 as for MobileNetV2). Batch 8 crops of 512x512; slow on a CPU.
_base_ = ['../_base_/models/deeplabv3_mobilenet_v3_large.py', '../_base_/datasets/voc.py',
          '../_base_/quant/cnn_default.py', '../_base_/methods/pdquant.py']
quant = dict(w_bits=4, a_bits=4)
task = dict(resize=520)
recon = dict(iters=20000, batch_size=8, round_lambda=0.1, pd_temperature=1.0, dc=True, dc_lambda=0.005)
