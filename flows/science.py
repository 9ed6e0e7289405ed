"""Catalogue and comparison flows: thin wrappers that publish Prefect artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact


def _image_artifact(path: str, key: str) -> None:
    """Prefect shows images by URL; a local file is linked by its file:// URI."""
    create_image_artifact(image_url=Path(path).resolve().as_uri(), key=key)


@flow(name="catalogue")
def catalogue(
    config: str,
    cameras: list[str] | None = None,
    out: str | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, dict[str, str]]:
    """Episodes and hourly/daily activity per camera, into the store and ``out``.

    ``params``: episode/observability thresholds (see docs/catalogue.md), e.g.
    ``{"on": {"lava": 0.003}, "max_gap": "1h"}``.
    """
    import pandas as pd

    from plumenet.science.activity import run_catalogue

    paths = run_catalogue(config, cameras=cameras, out=out or "catalogue", **(params or {}))
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
            _image_artifact(timeline, f"timeline-{key}")
    return paths


@flow(name="compare")
def compare(
    config: str,
    camera: str,
    rsam: str | None = None,
    events: str | None = None,
    out: str | None = None,
    freq: str = "1h",
) -> dict[str, Any]:
    """Lagged correlation with RSAM, event coincidence and epoch stack for one camera.

    ``freq``: the bin of activity and RSAM; the lag is resolved to one bin.
    """
    import json

    from plumenet.science.compare import run_compare

    paths = run_compare(
        config, camera, rsam=rsam, events=events, out=out or "comparison", freq=freq
    )
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
