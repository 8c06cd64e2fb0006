"""Export a CLIP checkpoint to the clipsearch model folder (ONNX fp32 + int8, tokenizer, manifest).

A build step, run from the repository root: `python -m export --model SRC --out DIR`. It needs the
`export` extra (torch, transformers, optimum, onnx); the runtime package `clipsearch_onnx` never
imports anything from here.
"""
