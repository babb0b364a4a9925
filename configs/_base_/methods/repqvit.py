# RepQ-ViT: calibration only (no reconstruction). Its preset (ptqvision/methods/__init__.py QUANT_PRESETS)
# turns on the LayerNorm reparameterisation (per-channel ranges of every post-LayerNorm activation folded
# into the LayerNorm affine and the next Linear, leaving per-tensor input quantizers) and the log√2 softmax
# quantizer, for every quant.* key the config leaves at None; q, k, A and v are quantized per tensor
# (quant.attn_granularity='tensor' in vit_default). The paper calibrates on 32 images: set
# calib = dict(num_samples=32) in the experiment config (configs/repqvit/*). It is not set here because
# mmengine refuses a key defined in two files of one _base_ list, and every dataset base defines calib.
method = dict(type='repqvit')
