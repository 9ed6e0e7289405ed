"""Jobs: plain functions that combine I/O (storage) with the science and model parts.

Plan a backfill, run a work unit, run a catalogue or a comparison, write a synthetic archive.
May import: anything in plumenet below the CLI, storage, and Dask (cluster checks only).
Never flows or Prefect: flows wrap jobs, not the other way round.
"""
