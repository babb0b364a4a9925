# torchvision mobilenet_v2; point weights at your checkpoint (e.g. BRECQ's release) or use 'random' for timing.
model = dict(type='torchvision', name='mobilenet_v2', weights='checkpoints/mobilenet_v2.pth')
