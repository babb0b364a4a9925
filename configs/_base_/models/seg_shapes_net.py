# The semantic-segmentation demo's network: ShapesSegNet (ptqvision/models/segmentation.py, DeepLabV3+-like,
# 0.24 M parameters, BatchNorm, 4 residual blocks, ASPP-lite, decoder), trained here from scratch on generated
# shapes by tools/make_seg_demo.py (data/demo/seg_shapes/README.md). A small model trained here on synthetic
# data: its numbers say nothing about real segmentation benchmarks.
model = dict(type='seg_shapes_net', num_classes=7, weights='data/demo/seg_shapes/seg_shapes_net.pth')
