# Full ImageNet as ImageFolder trees (one sub-folder per class); calibration from the training split.
data = dict(
    calib=dict(root='data/imagenet/train', list_file=None),
    val=dict(root='data/imagenet/val', list_file=None),
    batch_size=100,
    num_workers=8,
)
calib = dict(num_samples=1024, seed=1005, batch_size=32)
