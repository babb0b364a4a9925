# SAM ViT-H, W6A6, YOLOX-L boxes, COCO val2017: PTQ4SAM (QDrop + Bimodal Integration + AGQ).
# No published number for this cell in REFERENCE.md.
# Set model.weights (the official checkpoint) and the COCO / detector paths of data.* (see the bases).
_base_ = ['../_base_/models/sam_vit_h.py', '../_base_/datasets/coco_yolox.py',
          '../_base_/quant/sam_default.py', '../_base_/methods/ptq4sam.py']
quant = dict(w_bits=6, a_bits=6)
