"""The fixed cost of one backfill flow call: what a nightly run pays before and after its
frames, measured on a run of one small unit, in fresh processes.

    python -m benchmarks.startup [--repeat 3] [--frames 12] [--tree PATH ...]

Each measurement is a fresh Python process that runs the ``backfill`` flow (ephemeral
Prefect server, local Dask cluster of one worker) over ``--frames`` hourly 640x480 frames
with the ViT-S/14-reg architecture (random weights). Two drivers:

- ``warm``: the driver has identified the model before the flow call, as ``plumenet
  backfill`` does (its CLI checks the weights first);
- ``cold``: it has not, as in a fresh Prefect flow-run process of a deployment.

Reported per run: the flow call's wall time, when the unit started (from the flow call),
the unit's inference and write, and the fixed cost = wall - inference - write. With several
``--tree`` paths (checkouts of this repository, e.g. ``git worktree add /tmp/old HEAD~1``),
the runs alternate between trees, so the trees are compared under the same conditions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
THIS = str(Path(__file__).resolve())


def one_run(driver: str, frames: int, model: str) -> dict:
    """One flow call in this process (``--one``); this tree's code is whatever
    ``sys.path`` finds first."""
    import pandas as pd

    from benchmarks.pipeline import _write_config
    from flows.pipeline import backfill
    from flows.runtime import prefect_api
    from plumenet.jobs.synth_archive import write_archive

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = pd.Timestamp("2024-01-01", tz="UTC")
        write_archive(
            str(root / "archive"), layout="flat", start=start,
            end=start + pd.Timedelta(hours=frames), cadence="1h", seed=1,
            fields={"CAM": "bench"}, camera="BENCH", missing=0.0,
        )  # fmt: skip
        config = _write_config(root, root / "archive", model, "1h", "2024-01-01")
        if driver == "warm":
            from plumenet.jobs.backfill import identify_model

            identify_model(model)
        torch_before = "torch" in sys.modules
        with prefect_api():
            began, began_at = time.perf_counter(), time.time()
            report = backfill(config=str(config), start="2024-01-01", end="2024-01-01")
            wall = time.perf_counter() - began
    import flows.pipeline
    import plumenet

    code = {str(Path(m.__file__).resolve().parents[1]) for m in (flows.pipeline, plumenet)}
    unit = report["unit_timings"][0]
    parts = report["unit_seconds"]
    return {
        "driver": driver,
        "code": sorted(code),
        "driver_had_torch": torch_before,
        "frames": report["frames"],
        "flow_wall_s": round(wall, 3),
        "unit_started_s": round(unit["started_at"] - began_at, 3),
        "unit_total_s": parts["total"],
        "infer_s": parts["infer"],
        "write_s": parts["write"],
        "fixed_s": round(wall - parts["infer"] - parts["write"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per driver and tree")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--tree", type=Path, action="append", help="checkouts to compare")
    parser.add_argument("--drivers", default="warm,cold")
    parser.add_argument("--one", choices=["warm", "cold"], help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one_run(args.one, args.frames, args.model_dir)))
        return

    from benchmarks.pipeline import _save_random_model

    trees = [t.resolve() for t in args.tree] if args.tree else [HERE]
    rows = []
    # saved here, so that a cold driver's process has never imported torch
    model = _save_random_model("vits14-reg", Path(tempfile.mkdtemp(prefix="startup-")))
    for i in range(args.repeat):
        for driver in args.drivers.split(","):
            for tree in trees:
                env = {**os.environ, "PYTHONPATH": str(tree)}
                # this file, run against the tree's code (a tree may predate it)
                run_this = f"import runpy; runpy.run_path({THIS!r}, run_name='__main__')"
                cmd = [sys.executable, "-c", run_this, "--one", driver,
                       "--frames", str(args.frames), "--model-dir", model]  # fmt: skip
                done = subprocess.run(
                    cmd, cwd=tree, env=env, capture_output=True, text=True, check=False
                )
                line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
                if done.returncode or not line:
                    sys.exit(f"run failed in {tree}:\n{done.stderr[-3000:]}")
                row = {"tree": str(tree), "round": i, **json.loads(line[0][7:])}
                if row["code"] != [str(tree)]:
                    sys.exit(f"the run in {tree} imported code from {row['code']}")
                if row["driver_had_torch"] != (driver == "warm"):
                    sys.exit(f"a {driver} driver had torch imported: {row['driver_had_torch']}")
                rows.append(row)
                print(json.dumps(row), flush=True)

    summary = {}
    for tree in trees:
        for driver in args.drivers.split(","):
            mine = [r for r in rows if r["tree"] == str(tree) and r["driver"] == driver]
            fixed = sorted(r["fixed_s"] for r in mine)
            started = sorted(r["unit_started_s"] for r in mine)
            summary[f"{tree.name}/{driver}"] = {
                "fixed_s": fixed,
                "median_fixed_s": fixed[len(fixed) // 2],
                "median_unit_started_s": started[len(started) // 2],
            }
    result = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%dT%H:%M%z"),
        "rows": rows,
        "summary": summary,
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
