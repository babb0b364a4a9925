# SAM ViT-B, W6A6, Faster R-CNN R50-FPN boxes, COCO val2017: round-to-nearest on PTQ4SAM's placement (calibrated ranges, uniform softmax).
# No published number for this cell in REFERENCE.md.
# Set model.weights (the official checkpoint) and the COCO / detector paths of data.* (see the bases).
_base_ = ['../_base_/models/sam_vit_b.py', '../_base_/datasets/coco_faster_rcnn.py',
          '../_base_/quant/sam_default.py', '../_base_/methods/rtn.py']
quant = dict(w_bits=6, a_bits=6)
