"""Evaluate a model on a labelled dataset, and write evaluations and training curves.

:func:`evaluate_model` gives the paper's Table 1 and Figure 3 over a
:class:`plumenet.training.datasets.SegmentationDataset` (the metrics of
:mod:`plumenet.training.metrics` on the summed confusion matrix, plus one row per image);
:func:`predict_labels` is the class map of one image it compares. :func:`write_evaluation`
writes such a result as JSON, CSVs and a confusion-matrix PNG; :func:`write_history`
writes a training history as ``history.csv`` and ``curves.png``. Plots use matplotlib's
object API (``Figure``, no pyplot state).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from plumenet.model.loaded import LoadedModel
from plumenet.model.network import PlumeNet
from plumenet.training.augment import resize_pair
from plumenet.training.datasets import IGNORE_INDEX, SegmentationDataset
from plumenet.training.metrics import confusion_matrix, segmentation_metrics, to_jsonable

__all__ = [
    "evaluate_model",
    "plot_confusion",
    "plot_curves",
    "predict_labels",
    "write_evaluation",
    "write_history",
]


def predict_labels(
    model: PlumeNet, image: np.ndarray, *, at_original_resolution: bool = True
) -> np.ndarray:
    """Class map of one ``H x W x 3`` uint8 image.

    The image is resized to the model's input size; logits are upsampled bilinearly to
    ``H x W`` (``at_original_resolution``, as the paper) before the argmax, otherwise the
    map is at input size.
    """
    size = model.config.input_size
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255
    x, _ = resize_pair(x, None, size)
    with torch.inference_mode():
        logits = model(model.normalize(x.to(model.device)))
        if at_original_resolution and tuple(image.shape[:2]) != (size, size):
            logits = F.interpolate(
                logits, size=image.shape[:2], mode="bilinear", align_corners=False
            )
        return logits.argmax(1)[0].cpu().numpy().astype(np.uint8)


def evaluate_model(
    model: PlumeNet | LoadedModel,
    dataset: SegmentationDataset,
    *,
    at_original_resolution: bool = True,
    names: Sequence[str] | None = None,
    on_image: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """The paper's Table 1 and Figure 3 over a labelled dataset.

    ``on_image(1)`` is called after each image (progress for long evaluations).

    Returns :func:`plumenet.training.metrics.segmentation_metrics` of the summed confusion matrix
    plus ``n_images`` and ``per_image`` (one dict per image: ``image``, ``pixels``,
    ``pixel_accuracy``, ``pixel_accuracy_no_background``, ``mean_iou`` and ``iou_<class>``).
    Predictions are compared at each image's original resolution unless
    ``at_original_resolution=False`` (then masks are resized to the input size, nearest).
    """
    net: PlumeNet = getattr(model, "model", model)
    net.eval()
    classes = net.classes
    k = net.config.num_classes
    names = names if names is not None else getattr(dataset, "names", None)
    total = np.zeros((k, k), dtype=np.int64)
    per_image = []
    for i in range(len(dataset)):
        image, mask = dataset[i]
        pred = predict_labels(net, image, at_original_resolution=at_original_resolution)
        if pred.shape != mask.shape:
            _, m = resize_pair(
                torch.zeros(1, 3, *mask.shape),
                torch.from_numpy(mask.astype(np.int64))[None],
                pred.shape[0],
            )
            mask = m[0].numpy()
        cm = confusion_matrix(mask, pred, k, ignore=IGNORE_INDEX)
        total += cm
        if on_image is not None:
            on_image(1)
        m = segmentation_metrics(cm, classes)
        row: dict[str, Any] = {
            "image": str(names[i]) if names is not None else str(i),
            "pixels": m["total_pixels"],
            "pixel_accuracy": m["pixel_accuracy"],
            "pixel_accuracy_no_background": m["pixel_accuracy_no_background"],
            "mean_iou": m["mean_iou"],
        }
        row.update({f"iou_{c}": m["classes"][c]["iou"] for c in classes})
        per_image.append(row)
    result = segmentation_metrics(total, classes)
    result["n_images"] = len(dataset)
    result["at_original_resolution"] = at_original_resolution
    result["per_image"] = per_image
    return result


def write_history(history: list[dict[str, Any]], out_dir: Path) -> None:
    """``history.csv`` and ``curves.png`` in ``out_dir``."""
    pd.DataFrame(history).to_csv(out_dir / "history.csv", index=False)
    plot_curves(history, out_dir / "curves.png")


def plot_curves(history: list[dict[str, Any]], path: str | Path) -> Path:
    """Loss, validation accuracy without background and mean IoU per epoch, as a PNG."""
    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(12, 3.5), constrained_layout=True)
    axes = fig.subplots(1, 3)
    axes[0].plot(epochs, [r["train_loss"] for r in history], label="train")
    axes[0].plot(epochs, [r["val_loss"] for r in history], label="validation")
    axes[0].set_title("loss")
    axes[0].legend()
    axes[1].plot(epochs, [r["val_pixel_accuracy_no_background"] for r in history])
    axes[1].set_title("validation pixel accuracy (no background)")
    axes[2].plot(epochs, [r["val_mean_iou"] for r in history])
    axes[2].set_title("validation mean IoU")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path


def plot_confusion(metrics: dict[str, Any], path: str | Path) -> Path:
    """Row-normalised confusion matrix (percent per true class) as a PNG."""
    names = list(metrics["classes"])
    norm = np.array(metrics["confusion_matrix_normalized"], dtype=float) * 100
    fig = Figure(figsize=(7, 6), constrained_layout=True)
    ax = fig.subplots()
    im = ax.imshow(np.nan_to_num(norm), vmin=0, vmax=100, cmap="Blues")
    for i in range(len(names)):
        for j in range(len(names)):
            v = norm[i, j]
            text = "-" if np.isnan(v) else f"{v:.1f}"
            ax.text(j, i, text, ha="center", va="center", color="white" if v > 50 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("normalised confusion matrix (% of each true class)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path


def write_evaluation(metrics: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write an :func:`evaluate_model` result: ``metrics.json``, ``per_class.csv``,
    ``confusion_matrix.csv`` (row-normalised), ``confusion_counts.csv``,
    ``confusion_matrix.png`` and ``per_image.csv``. Returns the paths by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(metrics["classes"])
    paths = {
        "metrics": out / "metrics.json",
        "per_class": out / "per_class.csv",
        "confusion_matrix": out / "confusion_matrix.csv",
        "confusion_counts": out / "confusion_counts.csv",
        "confusion_png": out / "confusion_matrix.png",
        "per_image": out / "per_image.csv",
    }
    paths["metrics"].write_text(json.dumps(to_jsonable(metrics), indent=2, allow_nan=False) + "\n")
    pd.DataFrame([{"class": n, **metrics["classes"][n]} for n in names]).to_csv(
        paths["per_class"], index=False
    )
    pd.DataFrame(metrics["confusion_matrix_normalized"], index=names, columns=names).rename_axis(
        "true \\ predicted"
    ).to_csv(paths["confusion_matrix"])
    pd.DataFrame(metrics["confusion_matrix"], index=names, columns=names).rename_axis(
        "true \\ predicted"
    ).to_csv(paths["confusion_counts"])
    pd.DataFrame(metrics.get("per_image", [])).to_csv(paths["per_image"], index=False)
    plot_confusion(metrics, paths["confusion_png"])
    return paths
