# AdaRound, layer by layer (BRECQ/QDrop code-base protocol): weights with activations off, then activation steps.
# Paper defaults: 20 000 iterations per unit, batch 32, AdaRound lr 1e-3, lambda 0.01 (set per architecture
# in each experiment). Settings left out here come from the method's preset (ptqvision/methods/adaround.py);
# config.py in the work dir lists every resolved value.
method = dict(type='adaround')
recon = dict(iters=20000, batch_size=32, round_lambda=0.01)
