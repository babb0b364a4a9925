# PTQ4SAM's placement (REFERENCE.md section 5; the sam adapter, ptqvision/models/sam_adapter.py): every Linear of
# the image encoder's blocks and of the mask decoder's two-way transformer, and the neck's two convs, quantized at
# their input (per tensor) and weight (per output channel, asymmetric, Lp p=2.4 range search); q, k, v of every
# attention after the projection and its post-softmax map; everything at the config's bits (no 8-bit first or last
# layer). Activation ranges: average of the per-image min/max over the calibration images (avg_minmax).
# softmax / bimodal_integration: None = the method's preset (ptq4sam: 'agq' and on; otherwise 'uniform' and off).
# Kept in full precision on purpose and listed by --dry-run: patch embedding, position embedding, LayerNorms,
# relative-position tables, residual adds, the prompt encoder, IoU/mask tokens, output upscaling, hypernetwork MLPs,
# IoU head and the final hyper_in @ upscaled_embedding.
quant = dict(
    w_bits=4, a_bits=4,
    w_granularity='channel', a_granularity='tensor',
    w_symmetric=False, a_symmetric=False,
    w_observer='lp', a_observer='avg_minmax', lp_p=2.4,
    head_stem_8bit=False,
    softmax=None, bimodal_integration=None,
    overrides=[],
)
