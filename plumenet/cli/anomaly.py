"""``plumenet anomaly fit | score | evaluate``: label-free PaDiM anomaly scores."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from plumenet.cli.group import CommandGroup
from plumenet.cli.options import config_option
from plumenet.cli.progress import progress

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from plumenet.config import CameraConfig, Config

log = logging.getLogger(__name__)


def _parse_layers(value: str | None) -> list[int] | None:
    if value is None or not value.strip():
        return None
    try:
        return [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a comma-separated list of layer numbers (e.g. 4,8,12 or -1)",
            param_hint="--layers",
        ) from None


def _parse_layer_weights(value: str | None) -> str | list[float] | None:
    """``rms`` | ``depth`` | comma-separated numbers (one per layer) -> fit_padim's option."""
    if value is None or not value.strip():
        return None
    text = value.strip().lower()
    if text in ("rms", "depth"):
        return text
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither rms, depth nor comma-separated numbers (e.g. 1,2,3)",
            param_hint="--layer-weights",
        ) from None


def _camera(config: str, camera: str) -> tuple[Config, CameraConfig]:
    from plumenet.config import load_config

    cfg = load_config(config)
    return cfg, cfg.camera(camera)


def _manifest(cfg: Config, cam: CameraConfig, start: str, end: str) -> pd.DataFrame:
    from plumenet.errors import ArchiveError
    from plumenet.timeutil import parse_range
    from storage.archive import list_frames

    t0, t1 = parse_range(start, end)
    df = list_frames(cam, t0, t1, storage_options=cfg.storage_options)
    if df.empty:
        raise ArchiveError(
            f"camera {cam.id!r}: no frames in [{t0.isoformat()}, {t1.isoformat()}) under "
            f"{cam.archive!r} — check --start/--end and the camera's `template`"
        )
    return df


def _subsample(df: pd.DataFrame, max_frames: int | None) -> pd.DataFrame:
    import numpy as np

    if not max_frames or len(df) <= max_frames:
        return df
    keep = np.unique(np.linspace(0, len(df) - 1, max_frames).round().astype(int))
    return df.iloc[keep].reset_index(drop=True)


def _read_batches(
    df: pd.DataFrame,
    size: int,
    storage_options: dict[str, Any],
    batch_size: int,
    skipped: list[str],
) -> Iterator[tuple[list[int], np.ndarray]]:
    """(row positions, uint8 N x S x S x 3) per batch; unreadable frames go to ``skipped``."""
    from plumenet.jobs.frames import decoded_batches

    paths = df["path"].astype(str).tolist()
    return decoded_batches(paths, size, storage_options, batch_size, skipped)


def _counted(frames: np.ndarray, rows: list[int], advance: Any) -> np.ndarray:
    """``frames``, after counting ``rows`` as done (progress of a lazy batch stream)."""
    advance(len(rows))
    return frames


def _report_skipped(skipped: list[str]) -> None:
    if skipped:
        click.echo(f"skipped {len(skipped)} unreadable frame(s) (first: {skipped[0]})", err=True)


@click.group("anomaly", cls=CommandGroup)
def anomaly_group() -> None:
    """Label-free anomaly scores: a PaDiM model of a camera's normal views."""


@anomaly_group.command("fit")
@config_option()
@click.option("--camera", required=True, help="Camera id in the config.")
@click.option("--start", required=True, help="Start of the baseline period (UTC, inclusive).")
@click.option("--end", required=True, help="End of the baseline (date = whole day included).")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Directory for the anomaly model (default: the camera's `anomaly_model`).",
)
@click.option("--layers", help="Backbone blocks, e.g. 4,8,12 (default: 1/3, 2/3 and last).")
@click.option(
    "--channels",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="Random channels kept.",
)
@click.option(
    "--mode",
    type=click.Choice(["concat", "weighted"]),
    default="concat",
    show_default=True,
    help="One Gaussian over all layers, or one per layer with weighted distances.",
)
@click.option(
    "--distance",
    type=click.Choice(["mahalanobis", "nlml"]),
    default="mahalanobis",
    show_default=True,
    help="Patch score: Mahalanobis distance, or negative log-likelihood (NLML; with "
    "--mode weighted: wNLML).",
)
@click.option(
    "--image-score",
    "reduction",
    type=click.Choice(["blur", "max"]),
    default="blur",
    show_default=True,
    help="Frame score: max of the upsampled, Gaussian-blurred patch map (published PaDiM), "
    "or the raw largest patch score.",
)
@click.option(
    "--blur-sigma",
    default=4.0,
    show_default=True,
    help="Gaussian sigma in input pixels for --image-score blur.",
)
@click.option(
    "--layer-weights",
    help="With --mode weighted: rms (equal contributions on the baseline; default), depth "
    "(deeper layers more, after Popescu et al.) or one number per layer, e.g. 1,2,3.",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the channel subset.")
@click.option(
    "--max-frames",
    default=2000,
    show_default=True,
    type=click.IntRange(min=0),
    help="Use at most this many baseline frames, evenly spread (0 = all).",
)
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--weights", "weights", help="Segmentation model (default: the config's `model`).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto).")
def fit_command(
    config: str,
    camera: str,
    start: str,
    end: str,
    out: str | None,
    layers: str | None,
    channels: int,
    mode: str,
    distance: str,
    reduction: str,
    blur_sigma: float,
    layer_weights: str | None,
    seed: int,
    max_frames: int,
    batch_size: int,
    weights: str | None,
    device: str | None,
) -> None:
    """Fit a camera's anomaly model on a baseline period of normal (quiet) frames."""
    from plumenet.anomaly.files import save_padim
    from plumenet.anomaly.fit import baseline_shortfall, fit_padim
    from plumenet.errors import ConfigError
    from plumenet.model.device import check_device
    from plumenet.model.weights import load_model

    check_device(device)
    cfg, cam = _camera(config, camera)
    target = out or cam.anomaly_model
    if not target:
        raise ConfigError(
            f"camera {cam.id!r}: no output given — pass --out DIR or set `anomaly_model` "
            "for the camera in the config"
        )
    layer_list = _parse_layers(layers)
    weight_option = _parse_layer_weights(layer_weights)
    if weight_option is not None and mode != "weighted":
        raise click.BadParameter(
            "layer weights combine one Gaussian per layer: add --mode weighted",
            param_hint="--layer-weights",
        )
    df = _subsample(_manifest(cfg, cam, start, end), max_frames)
    loaded = load_model(weights or cfg.segmentation_model(), device=device)
    skipped: list[str] = []
    with progress(len(df), f"anomaly fit {cam.id}") as advance:
        batches = (
            _counted(frames, rows, advance)
            for rows, frames in _read_batches(
                df, loaded.input_size, cfg.storage_options, batch_size, skipped
            )
        )
        try:
            padim = fit_padim(
                loaded,
                batches,
                layers=layer_list,
                n_channels=channels,
                seed=seed,
                mode=mode,
                distance=distance,
                reduction=reduction,
                sigma=blur_sigma,
                layer_weights=weight_option,
            )
        except ValueError as err:
            raise ConfigError(f"camera {cam.id!r}: cannot fit the anomaly model: {err}") from err
    path = save_padim(padim, target)
    _report_skipped(skipped)
    click.echo(
        f"anomaly model for {cam.id} fitted on {padim.n_samples} frames "
        f"(layers {','.join(map(str, padim.layers))}, {padim.n_channels} channels, "
        f"{padim.mode}, {padim.distance}, image score {padim.reduction}"
        f"{_weights_note(padim)}) -> {path}"
    )
    shortfall = baseline_shortfall(padim.n_samples, padim.group_sizes, padim.eps)
    if shortfall:
        click.echo(f"warning: camera {cam.id!r}: {shortfall}", err=True)
    if loaded.is_demo:
        click.echo("note: made with the bundled demo model (synthetic scenes) - demo/test only")


def _weights_note(padim: Any) -> str:
    if padim.mode != "weighted":
        return ""
    values = ",".join(f"{w:.3f}" for w in padim.weights.tolist())
    return f", layer weights {values}"


def _scorer(model_dir: str, weights: str | None, device: str | None) -> Any:
    from plumenet.anomaly.files import load_padim
    from plumenet.anomaly.scorer import AnomalyScorer
    from plumenet.model.weights import load_model

    padim = load_padim(model_dir)
    spec = weights or padim.backbone_info.get("source") or ""
    if not spec:
        from plumenet.errors import ConfigError

        raise ConfigError(
            f"anomaly model {model_dir} does not record which weights it was fitted with — "
            "pass them with --weights"
        )
    loaded = load_model(spec, device=device)
    return AnomalyScorer(padim, loaded, source=str(model_dir)), loaded


@anomaly_group.command("score")
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False))
@click.option("--weights", help="Segmentation model (default: the one the model was fitted with).")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto).")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
def score_command(
    model_dir: str,
    weights: str | None,
    batch_size: int,
    device: str | None,
    images: tuple[str, ...],
) -> None:
    """Print the anomaly score of each image (path<TAB>score; unreadable: nan)."""
    import pandas as pd

    from plumenet.model.device import check_device

    check_device(device)
    scorer, _ = _scorer(model_dir, weights, device)
    df = pd.DataFrame({"path": list(images)})
    skipped: list[str] = []
    scores = {}
    for rows, frames in _read_batches(df, scorer.input_size, {}, batch_size, skipped):
        for row, value in zip(rows, scorer.score_frames(frames), strict=True):
            scores[row] = float(value)
    for row, path in enumerate(images):
        click.echo(f"{path}\t{scores.get(row, float('nan')):.4f}")
    _report_skipped(skipped)


def _read_truth(path: str) -> pd.DataFrame:
    import pandas as pd

    from plumenet.errors import ConfigError

    try:
        if path.endswith(".parquet"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read truth file {path} ({err}) — pass a CSV") from err


@anomaly_group.command("evaluate")
@click.option(
    "--model",
    "model_dir",
    type=click.Path(file_okay=False),
    help="Anomaly model (default: the camera's `anomaly_model`).",
)
@config_option()
@click.option("--camera", required=True)
@click.option("--start", required=True)
@click.option("--end", required=True)
@click.option(
    "--truth",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="CSV: time or path, plus emission fraction columns or a 0/1 `label` column.",
)
@click.option(
    "--threshold",
    default=0.01,
    show_default=True,
    help="A frame is anomalous when any emission fraction exceeds this.",
)
@click.option(
    "--tolerance",
    default="30s",
    show_default=True,
    help="Largest time difference when matching the truth on time.",
)
@click.option("--weights", help="Segmentation model (default: the config's `model`).")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto).")
@click.option(
    "--scores",
    "scores_out",
    type=click.Path(dir_okay=False),
    help="Also write time,path,size,score,label to this CSV (size: file bytes).",
)
def evaluate_command(
    model_dir: str | None,
    config: str,
    camera: str,
    start: str,
    end: str,
    truth: str,
    threshold: float,
    tolerance: str,
    weights: str | None,
    batch_size: int,
    device: str | None,
    scores_out: str | None,
) -> None:
    """Score the frames of a period and report the AUROC against a ground truth."""
    import numpy as np

    from plumenet.anomaly.evaluation import auroc, labels_from_truth
    from plumenet.errors import ConfigError
    from plumenet.model.device import check_device
    from plumenet.timeutil import CSV_TIME_FORMAT

    check_device(device)
    cfg, cam = _camera(config, camera)
    model_dir = model_dir or cam.anomaly_model
    if not model_dir:
        raise ConfigError(
            f"camera {cam.id!r}: no anomaly model — pass --model DIR or set `anomaly_model`"
        )
    scorer, _ = _scorer(model_dir, weights or cfg.segmentation_model(), device)
    df = _manifest(cfg, cam, start, end)
    try:
        labels = labels_from_truth(_read_truth(truth), df, threshold=threshold, tolerance=tolerance)
    except ValueError as err:
        raise ConfigError(f"truth file {truth}: {err}") from err
    scores = np.full(len(df), np.nan)
    skipped: list[str] = []
    with progress(len(df), f"anomaly evaluate {cam.id}") as advance:
        for rows, frames in _read_batches(
            df, scorer.input_size, cfg.storage_options, batch_size, skipped
        ):
            scores[rows] = scorer.score_frames(frames)
            advance(len(rows))
    _report_skipped(skipped)
    df = df.assign(score=scores, label=labels.to_numpy())
    if scores_out:
        df.to_csv(scores_out, index=False, date_format=CSV_TIME_FORMAT)
    usable = df.dropna(subset=["score", "label"])
    n_pos = int(usable["label"].sum())
    click.echo(
        f"{cam.id}: {len(df)} frames, {len(usable)} scored and labelled "
        f"({n_pos} anomalous, {len(usable) - n_pos} normal)"
    )
    try:
        value = auroc(usable["score"].to_numpy(), usable["label"].to_numpy())
    except ValueError as err:
        raise ConfigError(
            f"camera {cam.id!r}: AUROC undefined: {err} — widen --start/--end or check --truth"
        ) from err
    click.echo(f"AUROC {value:.4f}")


COMMANDS = [anomaly_group]
