"""`python -m bench` (`make bench`): speed and memory of clipsearch on this machine, side by side
with the prototype's transformers + PyTorch pipeline, written to BENCHMARKS.md.

Everything is generated locally and cached in build/bench/: a full-size CLIP ViT-B/32 with random
weights (speed does not depend on their values) exported with `python -m export`, photo-sized
JPEGs, and clustered vectors for the 1M-vector figures.
"""
