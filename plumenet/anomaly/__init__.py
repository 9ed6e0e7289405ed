"""Label-free anomaly scores (PaDiM family): the nn.Module, fitting, files, evaluation.

May import: plumenet.model, plumenet.inference, the leaf modules, torch.
Never storage, flows, Prefect or Dask.
"""
