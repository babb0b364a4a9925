# Pascal VOC 2012 semantic segmentation, mmseg's protocol: 21 classes (background and 20 objects; 255, the object
# boundaries, ignored), label maps read as the palette indices they store; images resized to scale (2048, 512)
# with the ratio kept (short side 512 for VOC's 500x375 images), whole-image inference, logits compared at the
# label maps' size; mIoU from one confusion matrix over the 1449 validation images. Point root at your
# VOCdevkit/VOC2012 folder (JPEGImages, SegmentationClass, ImageSets/Segmentation/{train,val}.txt).
# Calibration: 128 train-split images drawn with calib.seed, seeded 512x512 crops (zero-padded where smaller).
task = dict(
    type='semantic_segmentation', num_classes=21, ignore_index=255, reduce_zero_label=False,
    inference='whole', resize=[2048, 512], keep_ratio=True, calib_crop=[512, 512],
    class_names=[
        'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
        'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train',
        'tvmonitor'
    ])
data = dict(
    calib=dict(type='voc', root='data/VOCdevkit/VOC2012', split='train'),
    val=dict(type='voc', root='data/VOCdevkit/VOC2012', split='val'),
    batch_size=4,  # sliding windows per forward (task.inference='slide')
    num_workers=4,
)
calib = dict(num_samples=128, seed=1005, batch_size=8)
