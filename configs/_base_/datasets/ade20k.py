# ADE20K (SceneParsing, ADEChallengeData2016) semantic segmentation, mmseg's protocol: 150 classes, label 0
# ("other") ignored and the rest shifted down by one (reduce_zero_label), 255 ignored; images resized to scale
# (2048, 512) with the ratio kept (short side 512 unless the long side would pass 2048), whole-image inference,
# logits resized to each label map's own size before the argmax (labels are never resized); mIoU from one
# confusion matrix over the 2000 validation images. Point root at your ADEChallengeData2016 folder
# (images/{training,validation}/*.jpg, annotations/{training,validation}/*.png). Calibration: 128 images drawn
# with calib.seed from the training split, preprocessed as for evaluation and cut to seeded 512x512 crops.
# Sliding-window evaluation instead (mmseg's slide mode): --cfg-options task.inference=slide
# "task.crop_size=[512, 512]" "task.stride=[341, 341]".
task = dict(
    type='semantic_segmentation', num_classes=150, ignore_index=255, reduce_zero_label=True,
    inference='whole', resize=[2048, 512], keep_ratio=True, calib_crop=[512, 512],
    class_names=[
        'wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed', 'windowpane', 'grass', 'cabinet',
        'sidewalk', 'person', 'earth', 'door', 'table', 'mountain', 'plant', 'curtain', 'chair', 'car',
        'water', 'painting', 'sofa', 'shelf', 'house', 'sea', 'mirror', 'rug', 'field', 'armchair', 'seat',
        'fence', 'desk', 'rock', 'wardrobe', 'lamp', 'bathtub', 'railing', 'cushion', 'base', 'box', 'column',
        'signboard', 'chest of drawers', 'counter', 'sand', 'sink', 'skyscraper', 'fireplace', 'refrigerator',
        'grandstand', 'path', 'stairs', 'runway', 'case', 'pool table', 'pillow', 'screen door', 'stairway',
        'river', 'bridge', 'bookcase', 'blind', 'coffee table', 'toilet', 'flower', 'book', 'hill', 'bench',
        'countertop', 'stove', 'palm', 'kitchen island', 'computer', 'swivel chair', 'boat', 'bar',
        'arcade machine', 'hovel', 'bus', 'towel', 'light', 'truck', 'tower', 'chandelier', 'awning',
        'streetlight', 'booth', 'television receiver', 'airplane', 'dirt track', 'apparel', 'pole', 'land',
        'bannister', 'escalator', 'ottoman', 'bottle', 'buffet', 'poster', 'stage', 'van', 'ship', 'fountain',
        'conveyer belt', 'canopy', 'washer', 'plaything', 'swimming pool', 'stool', 'barrel', 'basket',
        'waterfall', 'tent', 'bag', 'minibike', 'cradle', 'oven', 'ball', 'food', 'step', 'tank', 'trade name',
        'microwave', 'pot', 'animal', 'bicycle', 'lake', 'dishwasher', 'screen', 'blanket', 'sculpture',
        'hood', 'sconce', 'vase', 'traffic light', 'tray', 'ashcan', 'fan', 'pier', 'crt screen', 'plate',
        'monitor', 'bulletin board', 'shower', 'radiator', 'glass', 'clock', 'flag'
    ])
data = dict(
    calib=dict(type='ade20k', root='data/ade/ADEChallengeData2016', split='training'),
    val=dict(type='ade20k', root='data/ade/ADEChallengeData2016', split='validation'),
    batch_size=4,  # sliding windows per forward (task.inference='slide')
    num_workers=4,  # background processes decoding evaluation images
)
calib = dict(num_samples=128, seed=1005, batch_size=8)
