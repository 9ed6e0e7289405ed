"""The network and its weights: PlumeNet (DINOv2-reg backbone + conv head), builders, loading.

May import: torch, transformers, safetensors, huggingface_hub and plumenet's leaf modules
(errors, classes, timeutil, encoding). Never storage, flows, Prefect or Dask.
"""
