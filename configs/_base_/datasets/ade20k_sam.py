# ADE20K (SceneParsing, ADEChallengeData2016) for SAM as Semantic Segment Anything uses it (task sam_semantic,
# ptqvision/tasks/sam_semantic.py): SAM's automatic mask generator proposes masks on every validation image and each
# mask takes the majority class of a semantic branch inside it. Labels as configs/_base_/datasets/ade20k.py (mmseg's
# protocol): 150 classes, label 0 ("other") ignored and the rest shifted down by one (reduce_zero_label), 255
# ignored, compared at each label map's own size; mIoU from one confusion matrix over the 2000 validation images.
# Point data.*.root at your ADEChallengeData2016 folder (images/{training,validation}/*.jpg,
# annotations/{training,validation}/*.png).
# The semantic branch: the full-precision segmentation model of configs/sam_semantic/semantic_branch/
# deeplabv3_resnet50_ade20k.py (set its model.weights to your 150-class checkpoint; run with its own resize and
# inference). Instead:
#   a quantized branch: run tools/quant.py on that config, then --cfg-options "task.semantic_branch=dict(
#     config='configs/sam_semantic/semantic_branch/deeplabv3_resnet50_ade20k.py',
#     checkpoint='work_dirs/deeplabv3_resnet50_ade20k/quantized.pth')";
#   any other model's predictions (e.g. SegFormer or OneFormer, as Semantic Segment Anything used): a folder of label
#     maps <image stem>.png with classes 0..149 (the reduced indices), --cfg-options
#     "task.semantic_branch=dict(folder='data/ade/predictions/validation')".
# Mask generator: segment-anything's SamAutomaticMaskGenerator defaults (32x32 points, 64 per decoder batch, predicted
# IoU >= 0.88, stability >= 0.95, box NMS 0.7, no crops); Semantic Segment Anything's own runs change these
# thresholds: set task.mask_generator.* to match a protocol. Calibration (PTQ4SAM's count): 32 training images
# drawn with calib.seed, each with a 8x8 grid of point prompts (task.calib_points_per_side), one image per batch.
_base_ = ['ade20k.py']
task = dict(
    _delete_=True, type='sam_semantic', num_classes=150, ignore_index=255, reduce_zero_label=True,
    class_names={{_base_.task.class_names}},
    semantic_branch=dict(config='configs/sam_semantic/semantic_branch/deeplabv3_resnet50_ade20k.py'),
    mask_generator=dict(points_per_side=32, points_per_batch=64, pred_iou_thresh=0.88, stability_score_thresh=0.95,
                        box_nms_thresh=0.7, crop_n_layers=0, min_mask_region_area=0),
    calib_points_per_side=8)
data = dict(num_workers=0)  # sam_semantic reads its images in the main process
calib = dict(num_samples=32, seed=1005, batch_size=1)
