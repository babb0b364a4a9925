# timm deit_small_patch16_224 (DeiT-S, timm FP ImageNet top-1 79.85, REFERENCE.md section 7).
# Nothing is downloaded: point weights at your own timm checkpoint of this model (its state dict,
# e.g. saved from timm.create_model('deit_small_patch16_224', pretrained=True) on a machine with access),
# in this file or with --cfg-options model.weights=/path/to/deit_small_patch16_224.pth; 'random' for timing and
# dry runs.
model = dict(type='timm', name='deit_small_patch16_224', weights='checkpoints/deit_small_patch16_224.pth')
