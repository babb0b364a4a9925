# torchvision regnet_x_3_2gf; point weights at your checkpoint (e.g. BRECQ's release) or use 'random' for timing.
model = dict(type='torchvision', name='regnet_x_3_2gf', weights='checkpoints/regnet_x_3_2gf.pth')
