"""Science, pure functions: observability, episodes, binned activity, seismic comparison, figures.

May import: numpy, pandas, xarray, scipy, matplotlib and the leaf modules. No I/O beyond
writing a figure to a path it is given; never storage, flows, Prefect, Dask or torch.
"""
