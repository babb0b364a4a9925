# Semantic-segmentation demo: QDrop W4A4 of the small ShapesSegNet trained here on synthetic shapes
# (data/demo/seg_shapes; not a real segmentation benchmark): every residual block and remaining layer
# reconstructed in turn on 64 calibration crops (96x96), AdaRound + LSQ activation steps with drop 0.5.
# Sized for a CPU like the other demos: 40 iterations per unit of 8 crops instead of the paper's 20 000 of 32
# images, so the AdaRound lr is 1e-2 instead of 1e-3 and the rounding regulariser 0.1; the same budget as
# seg_shapes_pdquant_w4a4.py, so that the two compare at equal iterations.
_base_ = ['../_base_/models/seg_shapes_net.py', '../_base_/datasets/seg_shapes.py',
          '../_base_/quant/cnn_default.py', '../_base_/methods/qdrop.py']
quant = dict(w_bits=4, a_bits=4)
recon = dict(iters=40, batch_size=8, weight_lr=1e-2, round_lambda=0.1)
