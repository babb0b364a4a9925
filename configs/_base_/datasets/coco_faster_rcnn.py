# COCO val2017 with Faster R-CNN R50-FPN boxes: score >= 0.05, NMS 0.5, at most 100 boxes per image (mmdet's test settings).
# Set data.val.det_file / data.calib.det_file to that detector's COCO results JSON on val2017 / train2017.
_base_ = ['coco_instance.py']
task = dict(score_thr=0.05, max_per_image=100)
data = dict(calib=dict(det_file='data/coco/detections/faster_rcnn_r50_fpn_train2017.json'),
            val=dict(det_file='data/coco/detections/faster_rcnn_r50_fpn_val2017.json'))
