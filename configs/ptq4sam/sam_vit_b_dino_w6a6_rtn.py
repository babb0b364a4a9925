# SAM ViT-B, W6A6, DINO (FocalNet-L) boxes, COCO val2017: round-to-nearest on PTQ4SAM's placement (calibrated ranges, uniform softmax).
# Published (REFERENCE.md section 5, mask mAP): FP 44.5; PTQ4SAM-L W6A6 40.4, W4A4 14.4 (inflated: trap 1); SAQ-SAM W4A4 33.8.
# Set model.weights (the official checkpoint) and the COCO / detector paths of data.* (see the bases).
_base_ = ['../_base_/models/sam_vit_b.py', '../_base_/datasets/coco_dino.py',
          '../_base_/quant/sam_default.py', '../_base_/methods/rtn.py']
quant = dict(w_bits=6, a_bits=6)
