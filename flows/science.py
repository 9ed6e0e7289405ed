"""Catalogue and comparison flows: thin wrappers that publish Prefect artifacts."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event

from flows.runtime import forward_project_logs
from plumenet.jobs.catalogue import run_catalogue
from plumenet.jobs.compare import run_compare
from plumenet.jobs.notify import episode_events, stored_episodes

logger = logging.getLogger(__name__)


def _image_artifact(path: str, key: str, title: str) -> None:
    """The PNG inline (a base64 data URI in a markdown artifact): the file is on the worker's
    disk, which a remote UI cannot reach, and no web server for the outputs is needed."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    create_markdown_artifact(
        key=key,
        markdown=f"### {title}\n\n![{title}](data:image/png;base64,{data})\n\nFile: `{path}`\n",
        description=title,
    )


@flow(name="catalogue")
def catalogue(
    config: str,
    cameras: list[str] | None = None,
    out: str | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, dict[str, str]]:
    """Episodes and hourly/daily activity per camera, into the store and ``out``; one
    ``plumenet.episode.started`` event per episode the store's previous catalogue lacked.

    Args:
        config: Path of cameras.yaml (relative to the working directory).
        cameras: Camera ids to catalogue (default: every camera of the config).
        out: Folder for the tables and the timeline PNG (default: ./catalogue).
        params: Episode/observability thresholds (see docs/catalogue.md), e.g.
            {"on": {"lava": 0.003}, "max_gap": "1h"}.
    """
    forward_project_logs()
    before = stored_episodes(config, cameras)
    paths = run_catalogue(config, cameras=cameras, out=out or "catalogue", **(params or {}))
    tables = {cam: files["episodes_parquet"] for cam, files in paths.items()}
    events = episode_events(before, tables)
    for event in events:
        emit_event(**event)
    logger.info("%d new episode(s) announced as %r events", len(events), "plumenet.episode.started")
    for camera, files in paths.items():
        key = camera.lower().replace(".", "-").replace("_", "-")
        episodes_csv = files.get("episodes_csv")
        table = pd.read_csv(episodes_csv) if episodes_csv else pd.DataFrame()
        if len(table):
            create_table_artifact(
                key=f"episodes-{key}",
                table=table.astype(str).to_dict(orient="records")[:1000],
                description=f"Emission episodes of {camera} ({len(table)})",
            )
        else:
            create_markdown_artifact(
                key=f"episodes-{key}", markdown=f"No emission episodes found for {camera}."
            )
        timeline = files.get("timeline_png")
        if timeline:
            _image_artifact(timeline, f"timeline-{key}", f"Activity timeline of {camera}")
    return paths


@flow(name="compare")
def compare(
    config: str,
    camera: str,
    rsam: str | None = None,
    events: str | None = None,
    out: str | None = None,
    freq: str = "1h",
    params: dict[str, Any] | None = None,
    mseed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Lagged correlation with RSAM, event coincidence and epoch stack for one camera.

    ``freq``: the bin of activity and RSAM (the lag is refined below one bin);
    ``params``: comparison options and catalogue thresholds of ``run_compare`` (e.g.
    ``{"detrend": "difference", "max_blind": "2h"}``); ``mseed``: RSAM-from-miniSEED
    options (``seed_id``, ``freqmin``, ``freqmax``, ``window``).
    """
    paths = run_compare(
        config, camera, rsam=rsam, events=events, out=out or "comparison", freq=freq,
        mseed=mseed, **(params or {}),
    )  # fmt: skip
    result_json = paths.get("comparison_json")
    if result_json and Path(result_json).exists():
        result = json.loads(Path(result_json).read_text())
        xcorr = result.get("xcorr") or {}
        create_markdown_artifact(
            key=f"comparison-{camera.lower().replace('.', '-').replace('_', '-')}",
            markdown=(
                f"### {camera} vs seismic\n\n"
                f"- best lag: {xcorr.get('best_lag_s')} s (positive: seismic leads)\n"
                f"- r = {xcorr.get('r')}, p = {xcorr.get('p_value')}\n"
            ),
        )
    return paths
