"""Paper 13's MFCC-VQ baseline (papers.md 14.5): ``kmeans`` (the codebook) and ``pipeline``
(runner ``"mfcc_vq"``: codebook, histograms, the metric-learning evaluation, dim-sim)."""
