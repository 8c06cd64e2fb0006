"""clipsearch: visual search over photo collections with CLIP on a CPU (ONNX Runtime + FAISS).

The core package imports neither torch, transformers, optimum nor any UI library.
"""

__version__ = "0.1.0"
