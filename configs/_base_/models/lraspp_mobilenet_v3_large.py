# torchvision LRASPP-MobileNetV3-Large (model.type 'torchvision_seg': returns the 'out' logits at the input size as a
# tensor), 21 Pascal VOC classes. weights: your checkpoint, e.g. torchvision's
# LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1 file lraspp_mobilenet_v3_large-d234d4ea.pth.
# torchvision's published mIoU / pixel accuracy for it, 57.9 / 91.2, are on a COCO val2017 subset with VOC's
# categories, images and labels resized to 520, not on VOC val. 'random' for timing; another label set: set
# model.num_classes and use your own checkpoint.
model = dict(type='torchvision_seg', name='lraspp_mobilenet_v3_large', num_classes=21, weights='checkpoints/lraspp_mobilenet_v3_large-d234d4ea.pth')
