# The embedded demo: 128 calibration and 300 evaluation ImageNet images (see data/demo/README.md).
data = dict(
    calib=dict(root='data/demo/calib', list_file='data/demo/calib/labels.txt'),
    val=dict(root='data/demo/val', list_file='data/demo/val/labels.txt'),
    batch_size=50,
    num_workers=0,
)
calib = dict(num_samples=128, seed=1005, batch_size=32)
