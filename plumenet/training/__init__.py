"""Training and evaluation: datasets, LabelMe, augmentation, losses, the loop and its
checkpoints, evaluation with the paper's metrics, and the demo model's recipe.

May import: plumenet.model, plumenet.inference, plumenet.synthetic, the leaf modules, torch.
Never storage, flows, Prefect or Dask.
"""
