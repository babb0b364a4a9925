# Semantic-segmentation demo: round-to-nearest W4A4 of the small ShapesSegNet trained here on synthetic shapes
# (data/demo/seg_shapes; not a real segmentation benchmark). Ranges from 64 calibration crops; the CNN placement
# (BN folded, 8-bit stem and head). Compare with seg_shapes_qdrop_w4a4.py and seg_shapes_pdquant_w4a4.py.
_base_ = ['../_base_/models/seg_shapes_net.py', '../_base_/datasets/seg_shapes.py',
          '../_base_/quant/cnn_default.py', '../_base_/methods/rtn.py']
quant = dict(w_bits=4, a_bits=4)
