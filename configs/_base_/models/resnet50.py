# torchvision resnet50; point weights at your checkpoint (e.g. BRECQ's release) or use 'random' for timing.
model = dict(type='torchvision', name='resnet50', weights='checkpoints/resnet50.pth')
