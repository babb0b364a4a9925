# torchvision's int8 QAT MobileNetV2 dequantized to float with BN folded (see ../shared/data/README.md).
model = dict(type='mobilenet_v2_folded',
             weights='../shared/data/mobilenet_v2_int8_pytorch_demo/mobilenet_v2_bnfolded_float_from_int8.pt')
