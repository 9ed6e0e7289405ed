"""``plumenet predict IMAGE...``: segment single images; write overlays and JSON.

For every image ``<stem>_overlay.png`` (class colours over the image, with a legend)
and ``<stem>.json`` (class fractions, brightness, usability, model id and digest) are
written to ``--out``. A file that cannot be read or decoded is reported on stderr (one
line: file and reason) and skipped; the others are still processed and the exit code
is 1. Missing or unreachable weights are a user error (exit code 2, nothing written).
Everything made with the bundled demo model says so (``"demo_model": true`` + a note).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from plumenet.cli.options import model_run_options

DEMO_NOTE = (
    "made with the bundled demo model (trained on synthetic scenes): for trying the "
    "software only, not for interpreting real webcam images"
)


@contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Any]:
    """A rich progress bar on stderr (only when it is a terminal); yields ``advance()``."""
    if not enabled:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("predicting", total=total)
        yield lambda: progress.advance(task)


def _unique_stem(path: Path, used: set[str]) -> str:
    stem = path.stem or "image"
    candidate, k = stem, 2
    while candidate in used:
        candidate = f"{stem}_{k}"
        k += 1
    used.add(candidate)
    return candidate


def run_predict(
    images: Sequence[str],
    *,
    model: str = "demo",
    out: str | Path = "predictions",
    device: str | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> tuple[int, int, bool]:
    """Library form of the command; returns ``(written, failed, demo_model_used)``."""
    import numpy as np

    from plumenet.classes import MODEL_CLASSES
    from plumenet.errors import UnreadableImageError
    from plumenet.inference.decode import decode_rgb, resize_frame
    from plumenet.inference.overlay import overlay_png
    from plumenet.inference.predictor import Predictor
    from plumenet.model.device import check_device
    from plumenet.model.weights import load_model

    check_device(device)  # a GPU this machine lacks: exit 2 before any output
    loaded = load_model(model, device=device)  # WeightsError -> exit 2 before any output
    predictor = Predictor(loaded, device=device, batch_size=batch_size)
    size = predictor.input_size
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    written = failed = 0

    def fail(path: str, reason: str) -> None:
        nonlocal failed
        failed += 1
        click.echo(f"{path}: skipped ({reason})", err=True)

    with _progress(len(images), progress) as advance:
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            decoded = []
            for name in chunk:
                try:
                    data = Path(name).read_bytes()
                    # full resolution: the overlay is drawn on the frame as the user has it
                    img = decode_rgb(data, source=name)
                except UnreadableImageError as err:
                    fail(name, err.reason)
                    advance()
                    continue
                except OSError as err:
                    fail(name, err.strerror or err.__class__.__name__)
                    advance()
                    continue
                decoded.append((name, img))
            if not decoded:
                continue
            frames = np.stack([resize_frame(img, size) for _, img in decoded])
            result = predictor.predict(frames, return_class_map=True)
            class_maps = result.class_map if result.class_map is not None else []
            for i, (name, img) in enumerate(decoded):
                stem = _unique_stem(Path(name), used)
                overlay_name = f"{stem}_overlay.png"
                overlay_png(img, class_maps[i]).save(out_dir / overlay_name)
                doc: dict[str, Any] = {
                    "image": name,
                    "overlay": overlay_name,
                    "fractions": {
                        cls: round(float(v), 6)
                        for cls, v in zip(MODEL_CLASSES, result.fraction[i], strict=False)
                    },
                    "brightness": round(float(result.brightness[i]), 6),
                    "usable": bool(result.usable[i]),
                    "image_size": list(img.size),
                    "input_size": size,
                    "model": {
                        "id": loaded.model_id,
                        "digest": loaded.digest,
                        "backbone": loaded.backbone,
                        "source": loaded.source,
                    },
                    "demo_model": loaded.is_demo,
                }
                if loaded.is_demo:
                    doc["note"] = DEMO_NOTE
                (out_dir / f"{stem}.json").write_text(json.dumps(doc, indent=2) + "\n")
                written += 1
                advance()
    return written, failed, loaded.is_demo


@click.command("predict")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--model",
    "model_spec",
    default="demo",
    show_default=True,
    help="Weights: 'demo', a model directory, a TorchScript file or hf:OWNER/REPO.",
)
@click.option(
    "--out",
    default="predictions",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Directory for <stem>_overlay.png and <stem>.json.",
)
@model_run_options(batch_size=8)
def predict_command(
    images: tuple[str, ...], model_spec: str, out: str, device: str | None, batch_size: int
) -> None:
    """Segment IMAGE files; write a colour overlay and a JSON summary for each."""
    written, failed, demo = run_predict(
        list(images),
        model=model_spec,
        out=out,
        device=device,
        batch_size=batch_size,
        progress=sys.stderr.isatty(),
    )
    click.echo(f"{written} image(s) written to {out}" + (f", {failed} skipped" if failed else ""))
    if written and demo:
        click.echo(f"note: {DEMO_NOTE}")
    if failed:
        sys.exit(1)


COMMANDS = [predict_command]
