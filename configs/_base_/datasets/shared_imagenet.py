# Real assets beside the project (../shared/data): calibration on imagenet_sample_1000_r256 (one image per
# class), evaluation on all 1300 images of imagenet_val_subset_1300. Used by the benchmarks.
data = dict(
    calib=dict(root='../shared/data/imagenet_sample_1000_r256',
               list_file='../shared/data/imagenet_sample_1000_r256/labels.txt'),
    val=dict(root='../shared/data/imagenet_val_subset_1300',
             list_file='../shared/data/imagenet_val_subset_1300/labels.txt'),
    batch_size=100,
    num_workers=2,
)
calib = dict(num_samples=256, seed=1005, batch_size=32)
