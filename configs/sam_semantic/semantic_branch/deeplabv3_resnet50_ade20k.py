# The semantic branch of configs/sam_semantic (SAM on ADE20K, configs/_base_/datasets/ade20k_sam.py): torchvision's
# DeepLabV3-ResNet50 with 150 ADE20K classes on mmseg's ADE20K protocol (configs/_base_/datasets/ade20k.py: scale
# (2048, 512) with the ratio kept, whole-image inference, reduce_zero_label). torchvision publishes no ADE20K
# checkpoint: set model.weights to your own (a state dict of torchvision's deeplabv3_resnet50 with num_classes=150,
# as torchvision saves it). Another model: copy this file with another model base and point the SAM configs'
# task.semantic_branch at it; it must give 150 class logits.
# As the SAM configs use it, only the model (full precision, model.weights), its resize and inference are read.
# It is also an experiment of its own: tools/quant.py on it quantizes the branch (RTN W8A8 on the CNN placement
# here; --cfg-options quant.w_bits=... method.type=...) and writes work_dirs/deeplabv3_resnet50_ade20k/quantized.pth,
# the checkpoint of a quantized branch (task.semantic_branch=dict(config=..., checkpoint=...)).
_base_ = ['../../_base_/models/deeplabv3_resnet50.py', '../../_base_/datasets/ade20k.py',
          '../../_base_/quant/cnn_default.py', '../../_base_/methods/rtn.py']
model = dict(num_classes=150, weights='checkpoints/deeplabv3_resnet50_ade20k.pth')
quant = dict(w_bits=8, a_bits=8)
