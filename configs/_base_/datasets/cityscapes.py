# Cityscapes semantic segmentation (fine annotations), mmseg's protocol: the 19 train ids (255 ignored) of
# *_gtFine_labelTrainIds.png (made by cityscapesscripts' createTrainIdLabelImgs), images at their own 2048x1024
# (scale (2048, 1024) with the ratio kept), whole-image inference, logits compared at the label maps' size; mIoU
# from one confusion matrix over the 500 validation images. Point root at your cityscapes folder
# (leftImg8bit/<split>/<city>/*_leftImg8bit.png, gtFine/<split>/<city>/*_gtFine_labelTrainIds.png).
# Calibration: 128 training images drawn with calib.seed, seeded 512x1024 crops.
# Sliding windows (mmseg's 769x769 protocol): --cfg-options task.inference=slide "task.crop_size=[769, 769]"
# "task.stride=[513, 513]".
task = dict(
    type='semantic_segmentation', num_classes=19, ignore_index=255, reduce_zero_label=False,
    inference='whole', resize=[2048, 1024], keep_ratio=True, calib_crop=[512, 1024],
    class_names=[
        'road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign', 'vegetation',
        'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle'
    ])
data = dict(
    calib=dict(type='cityscapes', root='data/cityscapes', split='train'),
    val=dict(type='cityscapes', root='data/cityscapes', split='val'),
    batch_size=2,  # sliding windows per forward (task.inference='slide')
    num_workers=4,
)
calib = dict(num_samples=128, seed=1005, batch_size=4)
