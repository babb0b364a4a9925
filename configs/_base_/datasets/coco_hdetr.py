# COCO val2017 with H-Deformable-DETR boxes: the top 100 boxes per image.
# Set data.val.det_file / data.calib.det_file to that detector's COCO results JSON on val2017 / train2017.
_base_ = ['coco_instance.py']
task = dict(score_thr=0.0, max_per_image=100)
data = dict(calib=dict(det_file='data/coco/detections/h_deformable_detr_train2017.json'),
            val=dict(det_file='data/coco/detections/h_deformable_detr_val2017.json'))
