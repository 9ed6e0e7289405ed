"""Training and evaluation: datasets, LabelMe, augmentation, the loop, the paper's metrics.

May import: plumenet.model, plumenet.inference, plumenet.synthetic, the leaf modules, torch.
Never storage, flows, Prefect or Dask.
"""
