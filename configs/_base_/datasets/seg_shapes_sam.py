# The SAM semantic demo's data and protocol (task sam_semantic, ptqvision/tasks/sam_semantic.py): the 64 validation
# scenes of the semantic-segmentation demo (data/demo/seg_shapes: generated textured shapes, 7 classes, palette PNG
# label maps) through Semantic Segment Anything: SAM's automatic mask generator proposes masks, each takes the
# majority class of the semantic branch inside it. The semantic branch: the demo's ShapesSegNet in full precision,
# as configs/demo/seg_shapes_rtn_w4a4.py builds it (its model.weights, resize and whole-image inference only; that
# config's quantization is not applied unless a checkpoint is given). A quantized branch: run tools/quant.py on that
# config, then --cfg-options "task.semantic_branch=dict(config='configs/demo/seg_shapes_rtn_w4a4.py',
# checkpoint='work_dirs/seg_shapes_rtn_w4a4/quantized.pth')"; a folder of predicted label maps (<image stem>.png):
# "task.semantic_branch=dict(folder='DIR')".
# Sized for a CPU: 8x8 point prompts per image (segment-anything's default is 32x32; points_per_batch 64, so the
# decoder sees the whole grid in one batch), and the filters lowered from segment-anything's predicted IoU 0.88 and
# stability 0.95 to 0.5 and 0.6 (a small SAM's logits are softer than SAM's: at 0.95 stability none passes);
# calibration on 16 of the 64 seg_shapes calibration scenes with a 4x4 grid of point prompts each.
# The SAM: the demo configs load sam_tiny_shapes_points.pth (the demo SAM fine-tuned for point prompts by
# tools/make_sam_points_demo.py); the box-trained sam_tiny_shapes.pth gives noise on point prompts (mask slots 1-3),
# so no mask would pass the filters and every image would keep the branch's classes.
# Small models trained here on synthetic data: the numbers say nothing about SAM or about real benchmarks.
task = dict(
    type='sam_semantic', num_classes=7, ignore_index=255, reduce_zero_label=False,
    class_names='data/demo/seg_shapes/classes.txt',
    semantic_branch=dict(config='configs/demo/seg_shapes_rtn_w4a4.py'),
    mask_generator=dict(points_per_side=8, points_per_batch=64, pred_iou_thresh=0.5, stability_score_thresh=0.6,
                        box_nms_thresh=0.7),
    calib_points_per_side=4)
data = dict(
    calib=dict(type='list', list_file='data/demo/seg_shapes/calib.txt'),
    val=dict(type='list', list_file='data/demo/seg_shapes/val.txt'),
)
calib = dict(num_samples=16, seed=1005, batch_size=1)
note = ('small models trained here on synthetic data (SAM: data/demo/sam_shapes, not SAM; semantic branch: '
        'data/demo/seg_shapes): the numbers say nothing about SAM or about real segmentation benchmarks')
