"""The smaller sections of ``cameras.yaml``: tiling, camera geometry, cluster, inference.

Frozen, strict pydantic models, each validated on its own; :mod:`plumenet.config` puts them
into :class:`~plumenet.config.CameraConfig` and :class:`~plumenet.config.Config`.
"""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from plumenet.timeutil import parse_duration_text


def parse_duration(value: object, what: str) -> pd.Timedelta:
    """A positive duration from the config (text only: YAML reads ``cadence: 10`` as a number)."""
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as '10min' or '1h', got {value!r}")
    return parse_duration_text(value, what)


class TilingConfig(BaseModel):
    """Run frames larger than the model input as overlapping tiles (pixels of the frame)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    tile: int = Field(gt=0)
    stride: int = Field(gt=0)

    @model_validator(mode="after")
    def _stride_not_above_tile(self) -> TilingConfig:
        if self.stride > self.tile:
            raise ValueError(
                f"stride {self.stride} is larger than tile {self.tile}, which leaves gaps — "
                "use a stride <= tile"
            )
        return self


class CameraGeometry(BaseModel):
    """Where the vent is in the frame and how pixels become metres (docs/geometry.md):
    ``distance_m`` + ``vertical_fov_deg`` (+ ``tilt_deg``), or ``metres_per_pixel``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    vent_x: float = Field(ge=0)
    vent_y: float = Field(ge=0)
    distance_m: float | None = Field(default=None, gt=0)
    vertical_fov_deg: float | None = Field(default=None, gt=0, lt=180)
    tilt_deg: float = Field(default=0.0, gt=-90, lt=90)
    metres_per_pixel: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_possible_view(self) -> CameraGeometry:
        view = self.distance_m is not None or self.vertical_fov_deg is not None
        if view == (self.metres_per_pixel is not None):
            raise ValueError(
                "give either distance_m with vertical_fov_deg (and tilt_deg), or "
                "metres_per_pixel — not both, not neither"
            )
        if view and (self.distance_m is None or self.vertical_fov_deg is None):
            raise ValueError("distance_m and vertical_fov_deg go together — give both")
        half = (self.vertical_fov_deg or 0.0) / 2
        if view and abs(self.tilt_deg) + half >= 90:
            raise ValueError(
                f"tilt_deg {self.tilt_deg} with vertical_fov_deg {self.vertical_fov_deg} "
                "puts the top or bottom of the frame at or past the vertical, where no ray "
                "meets the plane through the vent — use |tilt| + fov/2 < 90"
            )
        return self


class AdaptConfig(BaseModel):
    """Adaptive scaling of a started cluster (``Cluster.adapt``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    minimum: int = Field(default=0, ge=0)
    maximum: int = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> AdaptConfig:
        if self.minimum > self.maximum:
            raise ValueError(
                f"adapt minimum {self.minimum} is above its maximum {self.maximum} — give "
                "MIN:MAX with MIN <= MAX"
            )
        return self


class ClusterConfig(BaseModel):
    """Where units run: at most one of ``address`` / ``scheduler_file`` / ``cluster_class``.

    ``address``: ``local`` (default), ``local-cuda`` or a running scheduler (``tcp://...``).
    ``workers`` / ``threads_per_worker`` / ``memory_limit`` size a local cluster;
    ``processes`` runs its workers as processes (true) or as threads of the driver's process
    (false; default: threads for one worker without ``memory_limit`` or ``adapt``);
    ``max_in_flight`` bounds the tasks dispatched at once (default: 2 x worker threads);
    ``frames_per_task``: consecutive units of a camera are run as one task until it holds
    this many frames (default: 20,000 on GPU workers, one unit per task on CPU workers);
    ``gpu`` annotates units with a ``GPU`` resource (default: when workers have one).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    address: str | None = None
    scheduler_file: str | None = None
    cluster_class: str | None = None
    cluster_kwargs: dict[str, Any] = Field(default_factory=dict)
    workers: int | None = Field(default=None, gt=0)
    threads_per_worker: int | None = Field(default=None, gt=0)
    memory_limit: str | None = None
    processes: bool | None = None
    adapt: AdaptConfig | None = None
    max_in_flight: int | None = Field(default=None, gt=0)
    frames_per_task: int | None = Field(default=None, ge=0)
    gpu: bool | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ClusterConfig:
        given = [k for k in ("address", "scheduler_file", "cluster_class") if getattr(self, k)]
        if len(given) > 1:
            raise ValueError(f"give one of {' / '.join(given)}, not several")
        if self.address and self.address not in ("local", "local-cuda") and "://" not in (
            self.address
        ):
            raise ValueError(
                f"address {self.address!r} is not 'local', 'local-cuda' or a scheduler "
                "address such as tcp://host:8786"
            )
        sized = [k for k in ("workers", "threads_per_worker", "memory_limit") if getattr(self, k)]
        if sized and self.kind not in ("local", "local-cuda"):
            raise ValueError(f"{', '.join(sized)} size a local cluster only — remove them")
        if self.processes is not None and self.kind != "local":
            raise ValueError("processes applies to a local cluster only — remove it")
        needs = [k for k in ("memory_limit", "adapt") if getattr(self, k)]
        if self.processes is False and needs:
            why = {"memory_limit": "a nanny enforces it", "adapt": "it starts and stops them"}
            raise ValueError(
                f"{' and '.join(needs)} need{'s' if len(needs) == 1 else ''} worker processes "
                f"({'; '.join(f'{k}: {why[k]}' for k in needs)}) — drop processes: false "
                f"(--in-process) or {' / '.join(needs)}"
            )
        if self.adapt and self.kind not in ("local", "cluster_class"):
            raise ValueError("adapt needs a cluster plumenet starts (local or cluster_class)")
        if self.cluster_kwargs and self.kind != "cluster_class":
            raise ValueError("cluster_kwargs go with cluster_class — add it or remove them")
        return self

    @property
    def kind(self) -> Literal["local", "local-cuda", "address", "scheduler_file", "cluster_class"]:
        """Which of the ways to reach workers this is."""
        if self.scheduler_file:
            return "scheduler_file"
        if self.cluster_class:
            return "cluster_class"
        if self.address in (None, "local"):
            return "local"
        return "local-cuda" if self.address == "local-cuda" else "address"


class InferenceConfig(BaseModel):
    """How work units run the model on a CUDA worker (CPU workers use ``--batch-size``).

    ``cuda_batch_size``: frames per batch on a GPU; ``gpu_decode``: decode plain JPEGs on
    the GPU (nvJPEG, the ``gpu`` extra; Pillow otherwise); ``compile``: ``torch.compile``
    the model, paid once per worker (docs/deploy.md, "Scaling the GPU workers").
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    cuda_batch_size: int = Field(default=128, gt=0)
    gpu_decode: bool = True
    compile: bool = False


