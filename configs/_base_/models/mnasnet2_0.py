# MnasNet-2.0 (torchvision's MNASNet class, depth multiplier 2.0), the MnasNet of the BRECQ/QDrop/PD-Quant
# tables; point weights at your checkpoint (e.g. BRECQ's release) or use 'random' for timing.
model = dict(type='torchvision', name='mnasnet2_0', weights='checkpoints/mnasnet2_0.pth')
