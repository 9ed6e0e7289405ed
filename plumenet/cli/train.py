"""``plumenet train`` (fine-tune on LabelMe-labelled images) and ``plumenet evaluate``."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from plumenet.cli.options import make_out_dir

if TYPE_CHECKING:
    from plumenet.model.network import PlumeNet
    from plumenet.training.datasets import SegmentationDataset

log = logging.getLogger(__name__)

_Command = TypeVar("_Command", bound=Callable[..., Any])


def _path_option(
    flag: str, help_text: str, *, folder: bool = False, **kwargs: Any
) -> Callable[[_Command], _Command]:
    """``--NAME PATH``, passed to the command as the :class:`~pathlib.Path` parameter ``NAME``;
    ``folder``: an existing file there is a usage error before any work."""
    name = flag.removeprefix("--")
    path_type = click.Path(path_type=Path, file_okay=not folder)
    return click.option(flag, name, type=path_type, help=help_text, **kwargs)


def _check_device(device: str | None) -> None:
    from plumenet.model.device import check_device

    check_device(device)


def _device_option(help_text: str) -> Callable[[_Command], _Command]:
    """``--device`` (default ``None``: CUDA when present)."""
    return click.option("--device", default=None, help=help_text)


def _base_model(spec: str, device: str | None) -> tuple[PlumeNet, str, dict[str, Any]]:
    """A model to start from: a weights spec (``demo``, DIR, hf:..., file) or a config name;
    with what it passes on to the trained model's metadata."""
    from plumenet.model.registry import MODEL_CONFIGS, build_model
    from plumenet.model.weights import load_model

    if spec != "demo" and spec in MODEL_CONFIGS and not Path(spec).exists():
        cfg = MODEL_CONFIGS[spec]
        model = build_model(cfg, pretrained=cfg.hf_backbone is not None, seed=0)
        return model, f"{spec} (new head)", {}
    loaded = load_model(spec, device=device)
    return loaded.model, f"{loaded.model_id} ({spec})", inherited_metadata(loaded.is_demo, spec)


def inherited_metadata(base_is_demo: bool, base: str) -> dict[str, Any]:
    """What a trained model keeps of its base: a demo backbone (synthetic scenes only) stays
    marked ``demo``, so predictions and stores made with the fine-tuned model still say so."""
    if not base_is_demo:
        return {}
    return {
        "demo": True,
        "description": f"fine-tuned from the demo model ({base}), whose backbone was trained on "
        "synthetic scenes only; for trying the software, not for science",
    }


def _load_dataset(data: Path, mask_classes: str) -> SegmentationDataset:
    """Images with ``NAME_mask.png`` masks below ``data`` if there are any, else LabelMe files."""
    from plumenet.errors import ConfigError
    from plumenet.training.datasets import images_without_masks, read_mask_pairs
    from plumenet.training.labelme import LabelMeDataset, index_labelme_dir

    if not data.is_dir():
        raise ConfigError(f"--data {data} is not a directory of labelled images")
    if any(data.rglob("*_mask.png")):
        ds = read_mask_pairs(data, mask_classes)
        if len(ds):
            unmasked = images_without_masks(data)
            if unmasked:
                click.echo(
                    f"warning: {len(unmasked)} image(s) under {data} have no NAME_mask.png "
                    f"and are not evaluated (e.g. {unmasked[0]}); add their masks, or move "
                    "them out of --data",
                    err=True,
                )
            return ds
    return LabelMeDataset(index_labelme_dir(data))


def _print_table(metrics: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(v: float) -> str:
        return "-" if v != v else f"{v:.3f}"

    table = Table(title=f"{metrics['n_images']} images")
    for col in ("class", "# GT pixels", "precision", "recall", "F1", "IoU"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, m in metrics["classes"].items():
        table.add_row(
            name,
            f"{m['gt_pixels']:,}",
            fmt(m["precision"]),
            fmt(m["recall"]),
            fmt(m["f1"]),
            fmt(m["iou"]),
        )
    console = Console()
    console.print(table)
    console.print(
        f"pixel accuracy {fmt(metrics['pixel_accuracy'])}, without background "
        f"{fmt(metrics['pixel_accuracy_no_background'])}, mean IoU {fmt(metrics['mean_iou'])}"
    )


@click.command("train")
@_path_option(
    "--data",
    "Folder of LabelMe files (subfolders CAMERA/VIEWPOINT/ name viewpoints).",
    required=True,
)
@_path_option(
    "--out",
    "Model directory to write (resumes if it holds a checkpoint).",
    folder=True,
    required=True,
)
@click.option(
    "--from",
    "base",
    default="demo",
    show_default=True,
    help="Start from weights (demo, DIR, hf:OWNER/REPO, file) or a config name "
    "(vits14-reg: pretrained DINOv2 + new head).",
)
@click.option("--epochs", default=75, show_default=True, type=int)
@click.option("--lr", default=1e-5, show_default=True, type=float)
@click.option("--batch-size", default=12, show_default=True, type=int)
@click.option(
    "--loss", type=click.Choice(["ce", "tversky", "ce+tversky"]), default="ce", show_default=True
)
@click.option(
    "--patience",
    default=10,
    show_default=True,
    type=int,
    help="Epochs without a better validation mean IoU before stopping (0: never).",
)
@click.option("--train-backbone", is_flag=True, help="Train the backbone too (small backbones).")
@click.option("--no-augment", is_flag=True, help="Switch augmentation off.")
@_device_option("cpu, cuda, cuda:1 ... (default: cuda if present).")
@click.option("--seed", default=0, show_default=True, type=int)
def train_command(
    data: Path,
    out: Path,
    base: str,
    epochs: int,
    lr: float,
    batch_size: int,
    loss: str,
    patience: int,
    train_backbone: bool,
    no_augment: bool,
    device: str | None,
    seed: int,
) -> None:
    """Fine-tune the segmentation head on LabelMe-labelled images.

    Images are split by viewpoint (70/15/15 % train/validation/test, no viewpoint in two
    splits); the best epoch by validation mean IoU is kept in OUT, which `--model OUT`
    then loads. Interrupted runs resume from OUT's checkpoint.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from plumenet.errors import ConfigError
    from plumenet.training.evaluate import evaluate_model, write_evaluation
    from plumenet.training.labelme import LabelMeDataset, index_labelme_dir, split_by_viewpoint
    from plumenet.training.loop import TrainConfig, TrainEvent, train

    _check_device(device)
    samples = index_labelme_dir(data)
    tr, va, te = split_by_viewpoint(samples, seed=seed)
    if not tr or not va:
        raise ConfigError(
            f"{data}: {len(samples)} images from "
            f"{len({(s.camera, s.viewpoint) for s in samples})} viewpoint(s) cannot be split "
            "into training and validation sets; label images from at least 2 viewpoints "
            "(subfolders CAMERA/VIEWPOINT/ or flags camera/viewpoint)"
        )
    config = TrainConfig(
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        loss=loss,  # type: ignore[arg-type]
        patience=patience or None,
        train_backbone=train_backbone,
        augment=not no_augment,
        seed=seed,
        device=device,
    )
    model, described, inherited = _base_model(base, device)
    make_out_dir(out)
    split = {
        name: [str(s.json_path) for s in part]
        for name, part in (("train", tr), ("validation", va), ("test", te))
    }
    (out / "split.json").write_text(json.dumps(split, indent=1) + "\n")
    click.echo(
        f"training from {described}: {len(tr)} train, {len(va)} validation, {len(te)} test images"
    )
    if inherited.get("demo"):
        click.echo(
            "note: the demo backbone was trained on synthetic scenes only; the trained model "
            "stays marked as a demo model (pass --from with real weights for science)"
        )
    with Progress(
        TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
        BarColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[note]}"),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task("train", total=None, epoch=0, epochs=epochs, loss=0.0, note="")

        def report(event: TrainEvent) -> None:
            if event.kind == "batch":
                bar.update(
                    task,
                    total=event.steps,
                    completed=event.step,
                    epoch=event.epoch,
                    loss=event.loss,
                )
            elif event.record is not None:
                bar.update(task, note=f"val mIoU {event.record['val_mean_iou']:.3f}")

        result = train(
            model,
            LabelMeDataset(tr),
            LabelMeDataset(va),
            config,
            out_dir=out,
            progress=report,
            model_id=out.name or "plumenet-finetuned",
            metadata={
                **inherited,
                "data": str(data),
                "base": base,
                "split": {k: len(v) for k, v in split.items()},
            },
        )
    if not (out / "model.safetensors").is_file():
        raise ConfigError(f"training wrote no model to {out}: no epoch produced a valid score")
    if te:
        metrics = evaluate_model(model, LabelMeDataset(te))
        write_evaluation(metrics, out / "test")
        click.echo(
            f"test split ({len(te)} images): mean IoU {metrics['mean_iou']:.3f}, pixel accuracy "
            f"without background {metrics['pixel_accuracy_no_background']:.3f} "
            f"(details in {out / 'test'})"
        )
    click.echo(
        f"model written to {out} (best epoch {result.best_epoch}, validation mean IoU "
        f"{result.best_val_miou:.3f}); curves in {out / 'curves.png'}. Use it with "
        f"`--model {out}`."
    )


@click.command("evaluate")
@click.option(
    "--model",
    "spec",
    required=True,
    help="Weights: demo, a model directory, hf:OWNER/REPO or a TorchScript file.",
)
@_path_option(
    "--data", "LabelMe folder, or images with NAME_mask.png masks beside them.", required=True
)
@_path_option(
    "--out",
    "Folder for metrics.json, CSVs and PNG.",
    folder=True,
    default=Path("evaluation"),
    show_default=True,
)
@click.option(
    "--mask-classes",
    type=click.Choice(["model", "label"]),
    default="model",
    show_default=True,
    help="What NAME_mask.png values index: 6 model or 8 label classes.",
)
@_device_option("cpu, cuda ... (default: cuda if present).")
def evaluate_command(
    spec: str, data: Path, out: Path, mask_classes: str, device: str | None
) -> None:
    """Per-class precision, recall, F1, IoU and the confusion matrix (the paper's Table 1)."""
    from plumenet.cli.progress import progress
    from plumenet.model.weights import load_model
    from plumenet.training.evaluate import evaluate_model, write_evaluation

    _check_device(device)
    dataset = _load_dataset(data, mask_classes)
    loaded = load_model(spec, device=device)
    make_out_dir(out)
    with progress(len(dataset), "evaluate", "images") as advance:
        metrics = evaluate_model(loaded, dataset, on_image=advance)
    metrics["model"] = loaded.describe()
    metrics["data"] = str(data)
    paths = write_evaluation(metrics, out)
    _print_table(metrics)
    if loaded.is_demo:
        click.echo("note: the demo model was trained on synthetic scenes only")
    click.echo(f"metrics written to {paths['metrics']}")


COMMANDS = [train_command, evaluate_command]
