# PTQ4SAM: QDrop's joint reconstruction (AdaRound + LSQ activation steps, drop probability 0.5 at the unit's input
# and inside it) on SAM's units, with Bimodal Integration and the AGQ softmax quantizer (its quant preset).
# Units (recon.partition='sub_block'): per encoder block its attention and its MLP, the neck, every decoder
# attention and MLP, the final token-to-image attention. Batch: one image with all its prompts (recon.batch_size=1).
# Paper settings: 20 000 iterations per unit, LSQ lr 4e-5 with cosine decay, AdaRound lambda 0.01, beta 20 -> 2
# after a 20 % warm-up; the AdaRound lr is QDrop's 1e-3 (REFERENCE.md gives none for PTQ4SAM).
method = dict(type='ptq4sam')
recon = dict(iters=20000, batch_size=1, partition='sub_block', round_lambda=0.01, weight_lr=1e-3, act_lr=4e-5)
