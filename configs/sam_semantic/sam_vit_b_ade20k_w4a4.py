# SAM ViT-B, W4A4, ADE20K semantic segmentation through Semantic Segment Anything: PTQ4SAM (QDrop + Bimodal
# Integration + AGQ). Only SAM is quantized; the semantic branch (configs/_base_/datasets/ade20k_sam.py) is the same
# for metrics.fp and metrics.quant, and results.json records it (data.protocol.quantized).
# Published (REFERENCE.md section 5, ADE20K mIoU, SAM-B; the papers publish no code for it): FP 33.15;
#   PTQ4SAM-L W6A6 32.65, W4A4 31.85.
# Set model.weights (the official checkpoint, sam_vit_b_01ec64.pth), data.*.root (ADEChallengeData2016) and the
# semantic branch's model.weights (configs/sam_semantic/semantic_branch/deeplabv3_resnet50_ade20k.py).
_base_ = ['../_base_/models/sam_vit_b.py', '../_base_/datasets/ade20k_sam.py',
          '../_base_/quant/sam_default.py', '../_base_/methods/ptq4sam.py']
model = dict(weights='checkpoints/sam_vit_b_01ec64.pth')
quant = dict(w_bits=4, a_bits=4)
