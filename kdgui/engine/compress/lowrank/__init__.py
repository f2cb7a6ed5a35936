"""Low-rank units: truncated SVD of Linear layers and convolution decompositions."""
