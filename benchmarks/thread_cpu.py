"""CPU seconds per thread of a running process over an interval, from ``/proc`` (Linux).

    python -m benchmarks.thread_cpu PID [SECONDS]

Exact where a sampling profiler is not: py-spy on this VM counts threads blocked in a queue
as busy. Used on a Dask worker in the middle of a unit (docs/BENCHMARKS.md, "Pipeline").
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def thread_cpu(pid: int) -> dict[str, tuple[str, float]]:
    """Thread id -> (name, user + system CPU seconds so far)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        tid = task.name
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[tid] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pid", type=int)
    parser.add_argument("seconds", type=float, nargs="?", default=30.0)
    args = parser.parse_args()
    before = thread_cpu(args.pid)
    time.sleep(args.seconds)
    after = thread_cpu(args.pid)
    rows = sorted(
        ((cpu - before.get(tid, (name, 0.0))[1], name, tid) for tid, (name, cpu) in after.items()),
        reverse=True,
    )
    total = sum(r[0] for r in rows)
    print(f"{total:.2f} CPU seconds in {args.seconds:.0f} s")
    for cpu, name, tid in rows:
        if cpu > 0:
            print(f"{cpu:8.2f}  {100 * cpu / max(total, 1e-9):5.1f} %  {name} {tid}")


if __name__ == "__main__":
    main()
