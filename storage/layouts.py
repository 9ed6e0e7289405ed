"""Path templates of real camera archives, and formatting a frame's path from its time.

Fields: ``{year} {month} {day} {doy} {HH} {MM} {SS}`` are date/time parts (local time of
the camera), ``{*}`` matches anything, and UPPERCASE names such as ``{SITE}``, ``{VC}``,
``{CAM}`` are camera fields: fixed by the camera's ``fields`` mapping, or matching any
``[A-Za-z0-9_-]+`` when not given (GeoNet view codes change over the years).
"""

from __future__ import annotations

import string
from datetime import datetime

#: Layouts used by real observatories' archives.
BUILTIN_TEMPLATES: dict[str, str] = {
    # GeoNet (New Zealand) open data: camera/volcano/images/...
    "geonet": "{year}/{SITE}/{SITE}.{VC}/{year}.{doy}/{year}.{doy}.{HH}{MM}.{SS}.{SITE}.{VC}.jpg",
    # Alaska Volcano Observatory ashcam archive.
    "avo": "{CAM}/{year}/{doy}/{CAM}-{year}{month}{day}T{HH}{MM}{SS}Z.jpg",
    # One folder of files named by timestamp.
    "flat": "{CAM}_{year}{month}{day}_{HH}{MM}{SS}.jpg",
}

DATE_FIELDS: tuple[str, ...] = ("year", "month", "day", "doy", "HH", "MM", "SS")


def resolve_template(template: str) -> str:
    """A built-in layout name (``geonet``, ``avo``, ``flat``) or a literal template."""
    return BUILTIN_TEMPLATES.get(template, template)


def template_fields(template: str) -> list[str]:
    """Names of the fields in ``template`` in order of appearance (``*`` included)."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def format_path(template: str, local_time: datetime, fields: dict[str, str]) -> str:
    """The relative path of a frame taken at ``local_time`` (camera time zone, as named)."""
    template = resolve_template(template)
    values = {
        "year": f"{local_time.year:04d}",
        "month": f"{local_time.month:02d}",
        "day": f"{local_time.day:02d}",
        "doy": f"{local_time.timetuple().tm_yday:03d}",
        "HH": f"{local_time.hour:02d}",
        "MM": f"{local_time.minute:02d}",
        "SS": f"{local_time.second:02d}",
    }
    missing = [
        name for name in template_fields(template) if name not in values and name not in fields
    ]
    if missing:
        raise ValueError(
            f"template {template!r} needs camera fields {missing}; give them in the camera's "
            "`fields` mapping"
        )
    return template.format(**values, **fields)
