"""All persistent I/O of plumenet: archive listing, the Zarr store, activity products, seismic
files. Imports only the leaves of ``plumenet`` (errors, classes, timeutil, encoding).

Modules: :mod:`~storage.archive` (listing frames, fsspec), :mod:`~storage.layouts` (path
templates), :mod:`~storage.camera` (the camera attributes storage reads, as Protocols),
:mod:`~storage.schema` (the store's layout), :mod:`~storage.grid` (time grid and work-unit
planning, pure), :mod:`~storage.zarr_store` (open, create/extend, register a model,
consolidate), :mod:`~storage.regions` (a unit's region writes and the ledger),
:mod:`~storage.reads` (xarray readers), :mod:`~storage.catalogue` (activity subgroups and
tables), :mod:`~storage.seismic` (RSAM and event files), :mod:`~storage.template` (the
checked-in empty store), :mod:`~storage.axis` (crash-safe creation and growth of a group's
arrays), :mod:`~storage.lease` (the one-driver-per-store lease), :mod:`~storage.verify` and
:mod:`~storage.repair` (finding and repairing damage).

A backfill, in order (see docs/store.md):

0. the driver takes the store lease (:func:`storage.lease.store_lease`) for the whole run;
1. the driver calls :func:`storage.zarr_store.ensure_camera` (creates the group or grows
   ``time`` at the end) and :func:`~storage.zarr_store.register_model`, lists frames over
   :meth:`storage.grid.CameraGrid.listing_window` of the requested units, then
   :func:`storage.grid.assign_slots`, :func:`storage.regions.read_ledger` and
   :func:`storage.grid.plan_units`;
2. each worker calls :func:`storage.regions.write_unit` for its unit only (whole
   chunks/shards, data first, ``status``/``model`` last; no metadata writes, so units run
   concurrently without locks);
3. the driver calls :func:`storage.zarr_store.consolidate`.
"""
