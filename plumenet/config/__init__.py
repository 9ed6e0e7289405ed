"""``cameras.yaml``: frozen, strict pydantic models and a loader that reports every problem.

``load_config`` validates the whole file at once and raises one :class:`ConfigError`
whose message is a header line plus one line per problem, each naming the camera, the
field and how to fix it. ``storage_options`` (credentials, endpoints) is kept out of
``repr``, ``str``, ``model_dump`` and JSON: use :meth:`Config.public_dict` for anything
that is written or logged.
"""

from plumenet.config.loader import load_config, parse_config
from plumenet.config.models import CameraConfig, Config
from plumenet.config.sections import (
    AdaptConfig,
    CameraGeometry,
    ClusterConfig,
    InferenceConfig,
    TilingConfig,
)

__all__ = [
    "AdaptConfig",
    "CameraConfig",
    "CameraGeometry",
    "ClusterConfig",
    "Config",
    "InferenceConfig",
    "TilingConfig",
    "load_config",
    "parse_config",
]
