# The SAM demo's model: a small SAM built from segment-anything's own classes (ImageEncoderViT with windowed and
# global attention and decomposed relative positions, PromptEncoder, MaskDecoder with a two-way transformer: the code
# path of SAM-B at 256x256 and 0.8 M parameters), trained here on synthetic shapes by tools/make_sam_demo.py
# (data/demo/sam_shapes/README.md). Not SAM: its numbers say nothing about SAM on COCO.
model = dict(type='sam', name='sam_tiny', weights='data/demo/sam_shapes/sam_tiny_shapes.pth')
