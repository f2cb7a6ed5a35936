"""Weight sharing (Han et al., Deep Compression, ICLR 2016): per-layer k-means on the weights."""
