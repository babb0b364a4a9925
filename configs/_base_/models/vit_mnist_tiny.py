# The MNIST toy ViT (a real model trained on MNIST, from pytorch/ios-demo-app; data/demo/README.md) as a timm
# VisionTransformer: patch 7 on 28x28x1, width 64, 6 blocks of 8 heads. An MNIST toy, not an ImageNet model.
model = dict(type='vit_mnist_tiny', weights='data/demo/vit_mnist/vit_mnist_tiny.pth', num_classes=10)
note = ('MNIST toy: a small ViT trained on MNIST (pytorch/ios-demo-app ViT4MNIST), evaluated on MNIST digits; '
        'not an ImageNet result')
