# segment-anything's SAM ViT-H (about 636 M parameters, 1024x1024 input), built from segment-anything's own
# classes. Nothing is downloaded: set model.weights to the official checkpoint (sam_vit_h_4b8939.pth), e.g.
# --cfg-options model.weights=/path/to/sam_vit_h_4b8939.pth (loaded strictly with weights_only=True).
model = dict(type='sam', name='sam_vit_h', weights=None)
