"""i-vector artist recognition and its hybrid with deep DCNN features (paper 8, papers.md 9).

Pipeline, each stage a module with pure jitted kernels and fitted models saved as ``.npz``:

* ``mfcc``: MFCC (+ deltas) in JAX on top of ``frontends.mel``; ``features``: per split;
* ``frames``: variable-length clips cut into fixed-shape masked batches of frame pieces;
* ``gmm``: diagonal-covariance GMM-UBM trained with EM over fixed-size frame chunks;
* ``total_variability``: Baum-Welch statistics, total-variability matrix EM, i-vectors;
* ``backend``: length normalisation, LDA, WCCN, cosine and two-covariance PLDA scoring;
* ``hybrid``: clip embeddings from a trained DCNN workdir, score and feature fusion;
* ``pipeline``: the whole fit/eval driven by a config (``musicrep ivector fit|eval``).

Memory: the device holds one batch of pieces (``ubm.pieces_per_batch x piece_frames`` frames)
or of clips at a time; the host holds the training split's features (float32, 60 x 4 bytes per
10 ms frame: about 86 MB per hour of audio) and per-clip statistics (``C x D`` floats a clip).
"""
