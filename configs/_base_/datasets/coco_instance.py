# COCO instance segmentation with detector box prompts (task coco_instance, ptqvision/tasks/instance_segmentation.py):
# SAM predicts one mask per detector box; score = detector score x SAM's predicted IoU; pycocotools segm mAP with the
# standard maxDets [1, 10, 100] (PTQ4SAM's mmdet evaluation used [100, 300, 1000]; REFERENCE.md trap 9).
# Point root/ann_file at your COCO tree and det_file at your detector's standard COCO results JSON
# ([{image_id, category_id, bbox [x, y, w, h], score}, ...]) for val2017 and for the calibration images of train2017.
# Calibration (PTQ4SAM): the first 32 images of instances_train2017 in file order that have a box, with their
# detector boxes; task.calib_boxes='gt' uses the ground-truth boxes instead (no train det_file needed);
# task.calib_order='random' draws a seeded sample. The protocol and the files' SHA-256 go into results.json.
task = dict(type='coco_instance', score_thr=0.0, max_per_image=None, max_dets=[1, 10, 100], prompt_chunk=64,
            calib_boxes='detector', calib_order='first')
data = dict(
    calib=dict(type='coco', root='data/coco/train2017', ann_file='data/coco/annotations/instances_train2017.json',
               det_file='data/coco/detections/train2017.json'),
    val=dict(type='coco', root='data/coco/val2017', ann_file='data/coco/annotations/instances_val2017.json',
             det_file='data/coco/detections/val2017.json'),
)
calib = dict(num_samples=32, seed=1005, batch_size=1)
