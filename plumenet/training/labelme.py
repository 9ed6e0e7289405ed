"""Read LabelMe annotations into label masks, and split them by viewpoint.

A LabelMe file is JSON with ``shapes`` (each ``label``, ``shape_type``, ``points``), the
image size (``imageHeight``, ``imageWidth``) and the image, either embedded
(``imageData``, base64) or as ``imagePath`` relative to the JSON file. :func:`rasterize`
draws the shapes in file order (later shapes on top) onto a background mask with PIL's
``ImageDraw`` semantics:

- ``polygon``: ``ImageDraw.polygon`` with the points as given (outline included);
- ``rectangle``: the two corner points, ``ImageDraw.rectangle`` (both corners included);
- ``circle``: centre and a point on the circle, ``ImageDraw.ellipse`` of that radius;
- ``line``, ``linestrip``, ``point``, ``points`` carry no area: ignored with a warning;
- any other shape type is an error;
- points may lie up to :data:`OUTSIDE_TOLERANCE` (1 px) beyond the image's
  ``[0, width] x [0, height]`` extent (they are clipped); further out is an error.

Label names go through a label map (:data:`DEFAULT_LABEL_MAP`: the 8 label classes of
VIGIA-PlumeData, case-insensitive, plus a few explicit aliases) to label indices into
:data:`plumenet.classes.LABEL_CLASSES`; use :func:`plumenet.classes.merge_labels` for
the 6 model classes. Pixels no shape covers are ``background``.

Camera and viewpoint of a sample: the ``camera`` / ``viewpoint`` entries of the file's
``flags`` (or top-level keys of those names) when present; otherwise the names of the
folders between the data root and the file: ``ROOT/CAMERA/VIEWPOINT/x.json`` gives both,
``ROOT/CAMERA/x.json`` gives the camera and viewpoint = camera, a file directly in ROOT
gets camera and viewpoint ``"default"``.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from plumenet.classes import LABEL_CLASSES, merge_labels
from plumenet.errors import ConfigError, PlumenetError

__all__ = [
    "DEFAULT_LABEL_MAP",
    "LabelMeDataset",
    "LabelMeError",
    "LabelMeRef",
    "Sample",
    "index_labelme_dir",
    "load_labelme",
    "load_labelme_dir",
    "rasterize",
    "split_by_viewpoint",
]

log = logging.getLogger(__name__)

#: Label name (lower case) -> label class. Identity on the 8 classes, plus aliases.
DEFAULT_LABEL_MAP: dict[str, str] = {
    **{name: name for name in LABEL_CLASSES},
    "sky": "background",
    "cloud": "background",
    "ground": "land",
    "column": "eruption_column",
    "plume": "eruption_column",
    "ash_cloud": "eruption_cloud",
    "ash": "eruption_cloud",
    "pdc": "pyroclastic_flow",
    "gas": "low_temperature_gas",
    "steam": "low_temperature_gas",
}

_AREA_SHAPES = ("polygon", "rectangle", "circle")
_NO_AREA_SHAPES = ("line", "linestrip", "point", "points")
#: LabelMe points are continuous coordinates in ``[0, width] x [0, height]``; they may lie
#: this many pixels beyond (rounding in annotation tools). Drawing clips them to the image.
OUTSIDE_TOLERANCE = 1.0


class LabelMeError(PlumenetError):
    """A LabelMe file that cannot be turned into a mask."""


@dataclass
class Sample:
    """One labelled image: ``mask`` holds label-class indices (8 classes), ``H x W`` uint8."""

    image_path: Path
    image: np.ndarray
    mask: np.ndarray
    camera: str
    viewpoint: str
    json_path: Path | None = None

    @property
    def model_mask(self) -> np.ndarray:
        """The mask merged to the 6 model classes."""
        return merge_labels(self.mask)


def _resolve_label(label: str, label_map: Mapping[str, str], where: str) -> int:
    key = label.strip().lower()
    target = label_map.get(key, label_map.get(label))
    if target is None or target not in LABEL_CLASSES:
        valid = sorted(set(label_map))
        raise LabelMeError(
            f"{where}: unknown label {label!r}; valid names: {', '.join(valid)} "
            "(pass a label map to add aliases)"
        )
    return LABEL_CLASSES.index(target)


def rasterize(
    doc: Mapping[str, Any],
    height: int,
    width: int,
    *,
    label_map: Mapping[str, str] | None = None,
    source: str = "<labelme>",
) -> np.ndarray:
    """The ``height x width`` uint8 label mask of a LabelMe document (see module docstring)."""
    label_map = {k.lower(): v for k, v in (label_map or DEFAULT_LABEL_MAP).items()}
    canvas = Image.new("L", (width, height), LABEL_CLASSES.index("background"))
    draw = ImageDraw.Draw(canvas)
    shapes = doc.get("shapes") or []
    for i, shape in enumerate(shapes):
        label = str(shape.get("label", ""))
        kind = str(shape.get("shape_type") or "polygon")
        where = f"{source}: shape {i} ({label!r}, {kind})"
        if kind in _NO_AREA_SHAPES:
            log.warning("%s has no area and is ignored", where)
            continue
        if kind not in _AREA_SHAPES:
            raise LabelMeError(
                f"{where}: shape type {kind!r} is not supported; use one of "
                f"{', '.join(_AREA_SHAPES)}"
            )
        value = _resolve_label(label, label_map, where)
        try:
            pts = np.asarray(shape.get("points"), dtype=np.float64).reshape(-1, 2)
        except (TypeError, ValueError) as err:
            raise LabelMeError(f"{where}: points are not a list of [x, y] pairs") from err
        _check_inside(pts, height, width, where)
        pts[:, 0] = pts[:, 0].clip(0, width - 1)
        pts[:, 1] = pts[:, 1].clip(0, height - 1)
        if kind == "polygon":
            if len(pts) < 3:
                raise LabelMeError(f"{where}: a polygon needs at least 3 points, got {len(pts)}")
            draw.polygon([tuple(p) for p in pts], fill=value, outline=value)
        elif kind == "rectangle":
            if len(pts) != 2:
                raise LabelMeError(f"{where}: a rectangle needs 2 points, got {len(pts)}")
            (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
            draw.rectangle([x0, y0, x1, y1], fill=value, outline=value)
        else:  # circle
            if len(pts) != 2:
                raise LabelMeError(f"{where}: a circle needs 2 points, got {len(pts)}")
            (cx, cy), (px, py) = pts
            r = float(np.hypot(px - cx, py - cy))
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=value, outline=value)
    return np.asarray(canvas, dtype=np.uint8).copy()


def _check_inside(pts: np.ndarray, height: int, width: int, where: str) -> None:
    tol = OUTSIDE_TOLERANCE
    bad = (
        (pts[:, 0] < -tol)
        | (pts[:, 0] > width + tol)
        | (pts[:, 1] < -tol)
        | (pts[:, 1] > height + tol)
    )
    if bad.any():
        x, y = pts[np.argmax(bad)]
        raise LabelMeError(
            f"{where}: point ({x:g}, {y:g}) lies outside the {width} x {height} image; "
            "fix the annotation (points must be within the image)"
        )


def _decode_image(data: bytes, where: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img = ImageOps.exif_transpose(img)
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError) as err:
        raise LabelMeError(f"{where}: the image cannot be decoded ({err})") from err


def _read_doc(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LabelMeError(f"{path}: not a readable LabelMe JSON file ({err})") from err
    if not isinstance(doc, dict) or "shapes" not in doc:
        raise LabelMeError(f"{path}: not a LabelMe file (no 'shapes' entry)")
    return doc


def _image_path(json_path: Path, image_path: object) -> Path:
    """Where ``imagePath`` points: relative to the JSON file's folder (LabelMe writes
    ``a.jpg``, ``images/a.jpg`` or ``../images/a.jpg``, with ``\\`` on Windows)."""
    if not image_path:
        return json_path.with_suffix("")
    return (json_path.parent / str(image_path).replace("\\", "/")).resolve()


def load_labelme(
    path: str | Path,
    *,
    label_map: Mapping[str, str] | None = None,
    root: str | Path | None = None,
) -> Sample:
    """Read one LabelMe JSON file: its image (embedded or ``imagePath``) and label mask.

    ``root`` is the data root used to derive camera/viewpoint from folder names.
    """
    path = Path(path)
    doc = _read_doc(path)
    image_path = _image_path(path, doc.get("imagePath"))
    if doc.get("imageData"):
        try:
            data = base64.b64decode(doc["imageData"], validate=False)
        except (binascii.Error, ValueError) as err:
            raise LabelMeError(f"{path}: imageData is not valid base64") from err
        image = _decode_image(data, f"{path} (imageData)")
    else:
        if not doc.get("imagePath"):
            raise LabelMeError(f"{path}: neither imageData nor imagePath is set")
        try:
            data = image_path.read_bytes()
        except OSError as err:
            raise LabelMeError(
                f"{path}: image {doc['imagePath']!r} not found at {image_path}; "
                "imagePath is read relative to the JSON file's folder: move the image "
                "there, fix imagePath, or embed the image (imageData)"
            ) from err
        image = _decode_image(data, str(image_path))
    height, width = image.shape[:2]
    h_doc, w_doc = doc.get("imageHeight"), doc.get("imageWidth")
    if h_doc and w_doc and (int(h_doc), int(w_doc)) != (height, width):
        raise LabelMeError(
            f"{path}: imageHeight x imageWidth {h_doc} x {w_doc} differ from the image's "
            f"{height} x {width}"
        )
    mask = rasterize(doc, height, width, label_map=label_map, source=str(path))
    camera, viewpoint = _camera_viewpoint(doc, path, Path(root) if root else path.parent)
    return Sample(image_path, image, mask, camera, viewpoint, json_path=path)


def _camera_viewpoint(doc: Mapping[str, Any], path: Path, root: Path) -> tuple[str, str]:
    flags = doc.get("flags") or {}
    camera = flags.get("camera", doc.get("camera"))
    viewpoint = flags.get("viewpoint", doc.get("viewpoint"))
    try:
        parts = path.parent.resolve().relative_to(root.resolve()).parts
    except ValueError:
        parts = ()
    if camera is None:
        camera = parts[0] if parts else "default"
    if viewpoint is None:
        viewpoint = parts[1] if len(parts) > 1 else str(camera)
    return str(camera), str(viewpoint)


@dataclass(frozen=True)
class LabelMeRef:
    """A LabelMe file found by :func:`index_labelme_dir`; :meth:`load` reads image and mask."""

    json_path: Path
    camera: str
    viewpoint: str
    root: Path

    def load(self, label_map: Mapping[str, str] | None = None) -> Sample:
        return load_labelme(self.json_path, label_map=label_map, root=self.root)


def index_labelme_dir(directory: str | Path) -> list[LabelMeRef]:
    """Every LabelMe ``*.json`` under ``directory`` (recursively, sorted by path), with its
    camera and viewpoint, without decoding images. JSON files without ``shapes`` are skipped;
    external images that do not exist are an error now, not after hours of training."""
    root = Path(directory)
    if not root.is_dir():
        raise ConfigError(f"data directory {root} does not exist; pass a folder of LabelMe files")
    files = sorted(p for p in root.rglob("*.json") if not p.name.startswith("."))
    refs = []
    missing: list[tuple[Path, str, Path]] = []
    for f in files:
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise LabelMeError(f"{f}: not a readable JSON file ({err})") from err
        if not isinstance(doc, dict) or "shapes" not in doc:
            log.info("skipping %s: not a LabelMe file", f)
            continue
        image = _image_path(f, doc.get("imagePath"))
        if not doc.get("imageData") and doc.get("imagePath") and not image.is_file():
            missing.append((f, str(doc["imagePath"]), image))
        camera, viewpoint = _camera_viewpoint(doc, f, root)
        refs.append(LabelMeRef(f, camera, viewpoint, root))
    if missing:
        f, name, image = missing[0]
        raise LabelMeError(
            f"{len(missing)} of {len(files)} LabelMe file(s) under {root} name an image that "
            f"does not exist, e.g. {f}: imagePath {name!r} -> {image}; imagePath is read "
            "relative to the JSON file's folder: fix imagePath, move the images, or embed "
            "them (imageData)"
        )
    if not refs:
        raise ConfigError(
            f"no LabelMe files (*.json with 'shapes') under {root}; label images with LabelMe "
            "and keep the JSON files there"
        )
    log.info("found %d LabelMe files under %s", len(refs), root)
    return refs


def load_labelme_dir(
    directory: str | Path, *, label_map: Mapping[str, str] | None = None
) -> list[Sample]:
    """Every LabelMe file under ``directory`` read into memory (see :func:`index_labelme_dir`)."""
    return [ref.load(label_map) for ref in index_labelme_dir(directory)]


_S = TypeVar("_S", Sample, LabelMeRef)


def split_by_viewpoint(
    samples: Sequence[_S],
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> tuple[list[_S], list[_S], list[_S]]:
    """Split into train / validation / test so that no viewpoint is in two splits.

    Viewpoints (``camera/viewpoint``) are shuffled with ``seed`` and assigned greedily to
    the split furthest below its target share of images. Each non-zero fraction gets at
    least one viewpoint when there are enough viewpoints.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ConfigError(f"split fractions must be three non-negative numbers, got {fractions}")
    total_f = float(sum(fractions))
    fracs = [f / total_f for f in fractions]
    groups: dict[str, list[_S]] = {}
    for s in samples:
        groups.setdefault(f"{s.camera}/{s.viewpoint}", []).append(s)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    splits: list[list[_S]] = [[], [], []]
    wanted = [i for i in range(3) if fracs[i] > 0]
    n_total = len(samples)
    # first make sure every wanted split gets a viewpoint (smallest shares first)
    order = sorted(wanted, key=lambda i: fracs[i])
    pending = list(keys)
    if len(pending) >= len(wanted):
        for i in order:
            splits[i].extend(groups[pending.pop()])
    for key in pending:
        deficits = [
            fracs[i] * n_total - len(splits[i]) if i in wanted else -np.inf for i in range(3)
        ]
        splits[int(np.argmax(deficits))].extend(groups[key])
    return splits[0], splits[1], splits[2]


class LabelMeDataset:
    """A :class:`plumenet.training.datasets.SegmentationDataset` (model-class masks) over samples in
    memory or :class:`LabelMeRef` files read on access (large sets stay on disk)."""

    def __init__(
        self,
        items: Sequence[Sample | LabelMeRef],
        *,
        label_map: Mapping[str, str] | None = None,
    ) -> None:
        self.items = list(items)
        self.label_map = label_map
        self.names = [
            str(getattr(i, "json_path", None) or getattr(i, "image_path", "")) for i in self.items
        ]

    def __len__(self) -> int:
        return len(self.items)

    def sample(self, index: int) -> Sample:
        item = self.items[index]
        return item.load(self.label_map) if isinstance(item, LabelMeRef) else item

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.sample(index)
        return s.image, s.model_mask
