"""All persistent I/O of plumenet: archive listing (fsspec), the Zarr store, catalogue files."""
