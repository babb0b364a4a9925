# FCN-ResNet50 W4A4, QDrop, on Pascal VOC 2012 val (configs/_base_/datasets/voc.py): point
# model.weights at your checkpoint and data.*.root at your VOC2012. Images at torchvision's scale (short side 520,
# the size its checkpoints were trained and evaluated at), logits compared at the label maps' own size.
# The CNN placement (BN folded, 8-bit stem and head, residual-add outputs quantized); 128 calibration crops of
# 512x512 from the train split. Another dataset: replace voc.py in _base_ by ade20k.py or cityscapes.py and set
# model.num_classes (150 / 19) with a checkpoint of that label set.
# QDrop: the papers' 20 000 iterations per unit with their AdaRound lambda for a ResNet backbone
# (0.01); batch 8 crops of 512x512 (more pixels per step than the papers' 32 images of 224x224; it bounds
# memory). It is slow on a CPU: shrink with --cfg-options recon.iters=...
_base_ = ['../_base_/models/fcn_resnet50.py', '../_base_/datasets/voc.py',
          '../_base_/quant/cnn_default.py', '../_base_/methods/qdrop.py']
quant = dict(w_bits=4, a_bits=4)
task = dict(resize=520)
recon = dict(iters=20000, batch_size=8, round_lambda=0.01)
