# SAM ViT-H, W6A6, H-Deformable-DETR boxes, COCO val2017: QDrop on PTQ4SAM's placement and units (uniform softmax, no BIG).
# No published number for this cell in REFERENCE.md.
# Set model.weights (the official checkpoint) and the COCO / detector paths of data.* (see the bases).
_base_ = ['../_base_/models/sam_vit_h.py', '../_base_/datasets/coco_hdetr.py',
          '../_base_/quant/sam_default.py', '../_base_/methods/qdrop.py']
quant = dict(w_bits=6, a_bits=6)
recon = dict(partition='sub_block', batch_size=1, iters=20000, round_lambda=0.01, weight_lr=1e-3, act_lr=4e-5)
