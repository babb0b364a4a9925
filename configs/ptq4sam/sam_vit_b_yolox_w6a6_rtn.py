# SAM ViT-B, W6A6, YOLOX-L boxes, COCO val2017: round-to-nearest on PTQ4SAM's placement (calibrated ranges, uniform softmax).
# Published (REFERENCE.md sections 5 and 7, mask mAP): FP 37.0; QDrop W4A4 13.3; PTQ4SAM-L W6A6 34.3, W4A4 18.4
#   (inflated: trap 1; re-reported at about 3.8 once fixed).
# Set model.weights (the official checkpoint) and the COCO / detector paths of data.* (see the bases).
_base_ = ['../_base_/models/sam_vit_b.py', '../_base_/datasets/coco_yolox.py',
          '../_base_/quant/sam_default.py', '../_base_/methods/rtn.py']
quant = dict(w_bits=6, a_bits=6)
