# torchvision mnasnet1_0; point weights at your checkpoint (e.g. BRECQ's release) or use 'random' for timing.
model = dict(type='torchvision', name='mnasnet1_0', weights='checkpoints/mnasnet1_0.pth')
