# SAM ViT-H, W4A4, DINO (FocalNet-L) boxes, COCO val2017: round-to-nearest on PTQ4SAM's placement (calibrated ranges, uniform softmax).
# Published (REFERENCE.md section 5, mask mAP): FP 49.1; PTQ4SAM-L W6A6 48.7, W4A4 43.9 (inflated: trap 1); SAQ-SAM W4A4 47.4.
# Set model.weights (the official checkpoint) and the COCO / detector paths of data.* (see the bases).
_base_ = ['../_base_/models/sam_vit_h.py', '../_base_/datasets/coco_dino.py',
          '../_base_/quant/sam_default.py', '../_base_/methods/rtn.py']
quant = dict(w_bits=4, a_bits=4)
