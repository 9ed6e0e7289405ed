"""Synthetic data with exact labels: scenes, and the timelines behind synthetic archives.

May import: numpy, pandas, obspy (QuakeML text) and the leaf modules. Writing an archive is a
job (plumenet.jobs.synth_archive).
"""
