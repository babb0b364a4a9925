# Semantic-segmentation demo: PD-Quant W4A4 of the small ShapesSegNet trained here on synthetic shapes
# (data/demo/seg_shapes; not a real segmentation benchmark). QDrop with the budget of seg_shapes_qdrop_w4a4.py
# (40 iterations per unit, batch 8, AdaRound lr 1e-2, lambda 0.1) plus the prediction difference: each unit's
# quantized output through the full-precision rest of the network to the logits, per-pixel
# KL(softmax(z_fp/T) || softmax(z_q/T)) averaged over pixels (T = 1, lambda_r = 0.1: our choice, PD-Quant
# publishes no segmentation setting), activation ranges re-initialised behind the quantized prefix, and
# distribution correction of each residual block's input on its BatchNorm statistics (lambda_c = 0.02 as for
# ResNets; 30 Adam steps instead of 500 on this CPU budget).
_base_ = ['../_base_/models/seg_shapes_net.py', '../_base_/datasets/seg_shapes.py',
          '../_base_/quant/cnn_default.py', '../_base_/methods/pdquant.py']
quant = dict(w_bits=4, a_bits=4)
recon = dict(iters=40, batch_size=8, weight_lr=1e-2, round_lambda=0.1, pd_temperature=1.0, pd_lambda=0.1,
             dc=True, dc_lambda=0.02, dc_iters=30, act_reinit_samples=64)
