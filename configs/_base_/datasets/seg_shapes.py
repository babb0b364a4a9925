# The semantic-segmentation demo set (data/demo/seg_shapes, made by tools/make_seg_demo.py): 64 validation and
# 64 calibration scenes of generated textured shapes (ptqvision/data/shapes.py), 7 classes (background and six
# shape kinds), palette PNG label maps listed in val.txt / calib.txt. Protocol: the long side resized to 128
# (ratio kept, mmseg's keep_ratio scale), whole-image inference, logits resized back to the label maps' own size
# (256 px) before the argmax; calibration on 96x96 crops of the resized calibration images.
task = dict(type='semantic_segmentation', num_classes=7, ignore_index=255, reduce_zero_label=False,
            class_names='data/demo/seg_shapes/classes.txt', inference='whole', resize=[128, 128], keep_ratio=True,
            calib_crop=[96, 96])
data = dict(
    calib=dict(type='list', list_file='data/demo/seg_shapes/calib.txt'),
    val=dict(type='list', list_file='data/demo/seg_shapes/val.txt'),
    batch_size=8,
    num_workers=0,
)
calib = dict(num_samples=64, seed=1005, batch_size=16)
note = 'a small model trained here on synthetic shapes (data/demo/seg_shapes), not a real segmentation benchmark'
