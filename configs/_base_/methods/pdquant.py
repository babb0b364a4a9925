# PD-Quant: QDrop (block-wise AdaRound + LSQ activation steps, drop 0.5) plus the prediction-difference
# loss KL(softmax(z_fp/T) || softmax(z_q/T)) / lambda_r through the full-precision rest of the network,
# per-block re-initialisation of activation ranges on 256 quantized-model inputs, and distribution
# correction of each block's calibration input (BatchNorm statistics, lambda_c).
# Paper defaults: 20 000 iterations per unit, batch 32, AdaRound lr 3e-3, lambda_r 0.1; T, lambda_c and
# the AdaRound lambda are set per architecture in each experiment. Settings left out here come from the
# method's preset (ptqvision/methods/pdquant.py); config.py in the work dir lists every resolved value.
# Ablations from the command line, e.g.: --cfg-options recon.pd_loss=False recon.dc=False (local loss only),
# recon.dc=False (+ prediction difference), recon.drop_prob=1.0 (no drop), recon.pd_temperature=1.
method = dict(type='pdquant')
recon = dict(iters=20000, batch_size=32, round_lambda=0.01, weight_lr=3e-3, pd_lambda=0.1, pd_temperature=1.0,
             dc_lambda=0.02, dc_iters=500, dc_lr=1e-3, dc_patience=100, dc_min_lr=1e-5, act_reinit_samples=256)
