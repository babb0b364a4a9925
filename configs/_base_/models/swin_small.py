# timm swin_small_patch4_window7_224 (Swin-S, timm FP ImageNet top-1 83.23, REFERENCE.md section 7).
# Nothing is downloaded: point weights at your own timm checkpoint of this model (its state dict,
# e.g. saved from timm.create_model('swin_small_patch4_window7_224', pretrained=True) on a machine with access),
# in this file or with --cfg-options model.weights=/path/to/swin_small_patch4_window7_224.pth; 'random' for timing and
# dry runs.
model = dict(type='timm', name='swin_small_patch4_window7_224', weights='checkpoints/swin_small_patch4_window7_224.pth')
