"""Offline demo: train a small CLIP on generated data and run the whole pipeline."""
