# SAM ViT-H, W4A4, DINO (FocalNet-L) boxes, COCO val2017: QDrop on PTQ4SAM's placement and units (uniform softmax, no BIG).
# Published (REFERENCE.md section 5, mask mAP): FP 49.1; PTQ4SAM-L W6A6 48.7, W4A4 43.9 (inflated: trap 1); SAQ-SAM W4A4 47.4.
# Set model.weights (the official checkpoint) and the COCO / detector paths of data.* (see the bases).
_base_ = ['../_base_/models/sam_vit_h.py', '../_base_/datasets/coco_dino.py',
          '../_base_/quant/sam_default.py', '../_base_/methods/qdrop.py']
quant = dict(w_bits=4, a_bits=4)
recon = dict(partition='sub_block', batch_size=1, iters=20000, round_lambda=0.01, weight_lr=1e-3, act_lr=4e-5)
