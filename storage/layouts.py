"""Path templates of real camera archives, and formatting a frame's path from its time.

Fields: ``{year} {month} {day} {doy} {HH} {MM} {SS}`` are date/time parts (local time of
the camera), ``{*}`` matches anything, and UPPERCASE names such as ``{SITE}``, ``{VC}``,
``{CAM}`` are camera fields: fixed by the camera's ``fields`` mapping, or matching any
``[A-Za-z0-9_-]+`` when not given (GeoNet view codes change over the years).
"""

from __future__ import annotations

import re
import string
from datetime import date, datetime

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


# --- parsing -------------------------------------------------------------------------------

#: Regex of each date field; ``{doy}`` is accepted with or without zero padding.
_FIELD_PATTERNS: dict[str, str] = {
    "year": r"\d{4}",
    "month": r"\d{2}",
    "day": r"\d{2}",
    "doy": r"\d{1,3}",
    "HH": r"\d{2}",
    "MM": r"\d{2}",
    "SS": r"\d{2}",
}
#: What an UPPERCASE camera field matches when the camera does not fix its value.
_CAMERA_FIELD_PATTERN = r"[A-Za-z0-9_-]+"


def template_regex(template: str, fields: dict[str, str] | None = None) -> str:
    """A regex (for ``re.fullmatch``) of paths that ``template`` describes.

    Date fields become named groups; a field repeated later in the template must repeat
    the same text (a backreference), so ``2024/.../2024.075`` cannot mix years. ``{*}``
    matches anything within one path segment. Camera fields given in ``fields`` match
    their value literally, others any ``[A-Za-z0-9_-]+``.
    """
    template = resolve_template(template)
    fields = fields or {}
    parts: list[str] = []
    seen: set[str] = set()
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name is None:
            continue
        if name == "*":
            parts.append(r"[^/]*?")
        elif name in seen:
            parts.append(f"(?P={name})")
        elif name in _FIELD_PATTERNS:
            parts.append(f"(?P<{name}>{_FIELD_PATTERNS[name]})")
            seen.add(name)
        elif name in fields:
            parts.append(re.escape(fields[name]))
        else:
            parts.append(f"(?P<{name}>{_CAMERA_FIELD_PATTERN})")
            seen.add(name)
    return "".join(parts)


def has_time_of_day(template: str) -> bool:
    """Whether names carry a full timestamp (date, hour and minute); else EXIF is needed."""
    names = set(template_fields(resolve_template(template)))
    has_date = "year" in names and ("doy" in names or {"month", "day"} <= names)
    return has_date and {"HH", "MM"} <= names


def date_values(day: date) -> dict[str, list[str]]:
    """Text of each date field for ``day``; ``doy`` lists padded and unpadded forms."""
    doy = day.timetuple().tm_yday
    doys = list(dict.fromkeys([f"{doy:03d}", f"{doy:d}", f"{doy:02d}"]))
    return {
        "year": [f"{day.year:04d}"],
        "month": [f"{day.month:02d}"],
        "day": [f"{day.day:02d}"],
        "doy": doys,
    }


def render_segment(segment: str, day: date, fields: dict[str, str]) -> list[str] | None:
    """Concrete spellings of one path segment for ``day`` (padded ``doy`` first).

    ``None`` when the segment holds a field that the day and camera fields do not fix
    (time of day, ``{*}``, an unset camera field): such a level must be listed.
    """
    values = date_values(day)
    options = [""]
    for literal, name, _, _ in string.Formatter().parse(segment):
        options = [o + literal for o in options]
        if name is None:
            continue
        if name in values:
            choices = values[name]
        elif name in fields:
            choices = [fields[name]]
        else:
            return None
        options = [o + c for o in options for c in choices]
    return list(dict.fromkeys(options))
