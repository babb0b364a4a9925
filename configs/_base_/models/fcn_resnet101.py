# torchvision FCN-ResNet101 (model.type 'torchvision_seg': returns the 'out' logits at the input size as a
# tensor), 21 Pascal VOC classes. weights: your checkpoint, e.g. torchvision's
# FCN_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1 file fcn_resnet101_coco-7ecb50ca.pth.
# Its auxiliary head is loaded (so the file loads strictly) and never run.
# torchvision's published mIoU / pixel accuracy for it, 63.7 / 91.9, are on a COCO val2017 subset with VOC's
# categories, images and labels resized to 520, not on VOC val. 'random' for timing; another label set: set
# model.num_classes and use your own checkpoint.
model = dict(type='torchvision_seg', name='fcn_resnet101', num_classes=21, weights='checkpoints/fcn_resnet101_coco-7ecb50ca.pth')
