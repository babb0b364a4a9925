# COCO val2017 with DINO (FocalNet-L) boxes: the top 300 boxes per image.
# Set data.val.det_file / data.calib.det_file to that detector's COCO results JSON on val2017 / train2017.
_base_ = ['coco_instance.py']
task = dict(score_thr=0.0, max_per_image=300)
data = dict(calib=dict(det_file='data/coco/detections/dino_focalnet_l_train2017.json'),
            val=dict(det_file='data/coco/detections/dino_focalnet_l_val2017.json'))
