"""U-Net for DSTL-style multi-band satellite segmentation: model, DSTL data, index channels,
D4 augmentation and smoothly blended full-image prediction."""
