# BRECQ/QDrop placement: per-channel asymmetric weights, per-tensor asymmetric activations at layer/block
# outputs, BN folded, 8-bit head and stem, residual-add outputs quantized, Lp (p=2.4) range search.
quant = dict(
    w_bits=4, a_bits=4,
    w_granularity='channel', a_granularity='tensor',
    w_symmetric=False, a_symmetric=False,
    w_observer='lp', a_observer='lp', lp_p=2.4,
    head_stem_8bit=True, stem_output_8bit=False, quantize_residual_output=True,
    fold_bn=True,
    overrides=[],
)
