# torchvision resnet18; point weights at your checkpoint (e.g. BRECQ's release) or use 'random' for timing.
model = dict(type='torchvision', name='resnet18', weights='checkpoints/resnet18.pth')
