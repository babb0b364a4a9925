# The embedded MNIST demo set (data/demo/vit_mnist/mnist_5k.csv.gz, 5000 real digits sorted by label):
# even rows (2500) for calibration, odd rows (2500) for evaluation, so the two never overlap and both are
# class-balanced.
data = dict(
    calib=dict(type='mnist_csv', file='data/demo/vit_mnist/mnist_5k.csv.gz', rows=[0, 5000, 2]),
    val=dict(type='mnist_csv', file='data/demo/vit_mnist/mnist_5k.csv.gz', rows=[1, 5000, 2]),
    batch_size=250,
    num_workers=0,
)
calib = dict(num_samples=256, seed=1005, batch_size=32)
