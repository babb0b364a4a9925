# The SAM demo's data (data/demo/sam_shapes, made by tools/make_sam_demo.py): generated scenes of textured shapes on
# textured backgrounds in COCO format, with a simulated detector's results file (jittered boxes, noisy scores, some
# misses and false positives). Calibration: the first 32 images of the 'train' split with their detector boxes;
# evaluation: the 'val' split, COCO segm mAP with the standard maxDets [1, 10, 100].
task = dict(type='coco_instance', score_thr=0.0, max_per_image=None, max_dets=[1, 10, 100], prompt_chunk=64,
            calib_boxes='detector', calib_order='first')
data = dict(
    calib=dict(type='coco', root='data/demo/sam_shapes/train', ann_file='data/demo/sam_shapes/instances_train.json',
               det_file='data/demo/sam_shapes/detections_train.json'),
    val=dict(type='coco', root='data/demo/sam_shapes/val', ann_file='data/demo/sam_shapes/instances_val.json',
             det_file='data/demo/sam_shapes/detections_val.json'),
)
calib = dict(num_samples=32, seed=1005, batch_size=1)
note = 'a small SAM trained here on synthetic shapes (data/demo/sam_shapes), not SAM: its mAP says nothing about SAM on COCO'
