"""tic: time-continual CLIP benchmarks, from raw pools to year buckets, shards and baselines."""

__version__ = "0.1.0"
