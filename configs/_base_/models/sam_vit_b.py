# segment-anything's SAM ViT-B (about 93.7 M parameters, 1024x1024 input), built from segment-anything's own
# classes. Nothing is downloaded: set model.weights to the official checkpoint (sam_vit_b_01ec64.pth), e.g.
# --cfg-options model.weights=/path/to/sam_vit_b_01ec64.pth (loaded strictly with weights_only=True).
model = dict(type='sam', name='sam_vit_b', weights=None)
