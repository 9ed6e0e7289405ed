"""Inference: frame decoding, the batched predictor, tiled inference, overlays.

May import: plumenet.model, the leaf modules, torch, Pillow. Never storage, flows, Prefect or Dask.
"""
