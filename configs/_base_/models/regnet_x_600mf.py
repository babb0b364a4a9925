# torchvision regnet_x_600mf; point weights at your checkpoint (e.g. BRECQ's release) or use 'random' for timing.
model = dict(type='torchvision', name='regnet_x_600mf', weights='checkpoints/regnet_x_600mf.pth')
