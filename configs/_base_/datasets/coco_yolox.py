# COCO val2017 with YOLOX-L boxes: score >= 0.05 (PTQ4SAM's YOLOX wrapper; mmdet's own default is 0.01: REFERENCE.md trap 9), NMS 0.65, no cap.
# Set data.val.det_file / data.calib.det_file to that detector's COCO results JSON on val2017 / train2017.
_base_ = ['coco_instance.py']
task = dict(score_thr=0.05, max_per_image=None)
data = dict(calib=dict(det_file='data/coco/detections/yolox_l_train2017.json'),
            val=dict(det_file='data/coco/detections/yolox_l_val2017.json'))
