"""Model files on disk: atomic multi-file directory writes and whole-file digests.

:func:`write_atomically` is how every saved model (segmentation weights, anomaly models)
reaches its directory: all files are written into a temporary directory next to the
target and then moved into place one by one, so a reader never sees a half-written file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["FILE_MODE", "file_digest", "write_atomically"]

#: Mode of every file we save: readable by the group and others, like the rest of a model dir.
FILE_MODE = 0o644


def write_atomically(
    directory: str | os.PathLike[str], writers: Mapping[str, Callable[[Path], None]]
) -> Path:
    """Create ``directory`` and write each ``name`` in it with ``writers[name](tmp_path)``.

    Every writer writes its file to the temporary path it is given; once all have
    succeeded the files replace those in ``directory`` in the order given, each with mode
    :data:`FILE_MODE`. Returns the directory.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".tmp-") as tmp:
        staged = []
        for name, write in writers.items():
            path = Path(tmp) / name
            write(path)
            path.chmod(FILE_MODE)  # some writers (safetensors) create files 0600
            staged.append((path, out / name))
        for path, target in staged:
            path.replace(target)
    return out


def file_digest(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
