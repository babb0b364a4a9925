# Vision-transformer placement (REFERENCE.md section 4): every Linear input-quantized per tensor with its
# weight per output channel (asymmetric, Lp range search); q, k, v and the post-softmax map quantized as
# matmul operands; the image entering the patch embedding at 8 bit; LayerNorms, residual adds, position
# embeddings, class tokens and Swin's relative-position bias / window mask in full precision (listed by
# --dry-run). softmax: 'uniform', 'log2', 'log_sqrt2' or 'agq'; attn_granularity: 'tensor' or 'head';
# ln_reparam: RepQ-ViT's LayerNorm reparameterisation. None = the method's preset decides (RepQ-ViT:
# reparameterisation and log_sqrt2), otherwise uniform softmax and no reparameterisation.
quant = dict(
    w_bits=4, a_bits=4,
    w_granularity='channel', a_granularity='tensor',
    w_symmetric=False, a_symmetric=False,
    w_observer='lp', a_observer='lp', lp_p=2.4,
    head_stem_8bit=False,
    softmax=None, attn_granularity='tensor', ln_reparam=None, patch_embed_a_bits=8,
    overrides=[],
)
