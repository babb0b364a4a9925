# BRECQ: block-wise AdaRound with activations off (8-bit stem not reconstructed), then activation steps (5 000 iterations, lr 4e-4, p=2.4).
# Paper defaults: 20 000 iterations per unit, batch 32, AdaRound lr 1e-3, lambda 0.01 (set per architecture
# in each experiment). Settings left out here come from the method's preset (ptqvision/methods/brecq.py);
# config.py in the work dir lists every resolved value.
method = dict(type='brecq')
recon = dict(iters=20000, batch_size=32, round_lambda=0.01)
