"""Fine-tune a PlumeNet head (optionally its small backbone): the training loop.

The paper's recipe is the default (:class:`TrainConfig`): AdamW, learning rate 1e-5,
batch 12, 75 epochs with early stopping on the validation mean IoU, weighted
cross-entropy with higher weights for ``eruption_column`` and ``lava``
(:mod:`plumenet.training.losses`), augmentation of :mod:`plumenet.training.augment`,
images resized to the model's input size. Datasets are
:class:`plumenet.training.datasets.SegmentationDataset`.

With an ``out_dir`` every epoch writes a checkpoint (:mod:`plumenet.training.checkpoints`:
model and optimiser tensors; epoch, history, best score, optimiser hyper-parameters);
a later call with the same ``out_dir`` resumes after the last finished epoch. Shuffling
and augmentation are seeded per epoch from ``seed`` + epoch, so an interrupted and
resumed run follows the same path as an uninterrupted one. The best model (by
validation mean IoU) is written with :func:`plumenet.model.weights.save_model` into
``out_dir`` (``model.safetensors`` + ``config.json``: loadable with ``--model OUT_DIR``),
and ``curves.png`` and ``history.csv`` show the training curves
(:func:`plumenet.training.evaluate.write_history`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from plumenet.classes import MODEL_CLASSES
from plumenet.errors import ConfigError
from plumenet.model.device import resolve_device
from plumenet.model.network import PlumeNet
from plumenet.model.weights import load_model, save_model
from plumenet.training.augment import AugmentConfig, augment_batch, resize_pair
from plumenet.training.checkpoints import load_checkpoint, save_checkpoint
from plumenet.training.datasets import IGNORE_INDEX, SegmentationDataset
from plumenet.training.evaluate import write_history
from plumenet.training.losses import LOSSES, LossName, segmentation_loss
from plumenet.training.metrics import confusion_matrix, segmentation_metrics, to_jsonable

__all__ = ["TrainConfig", "TrainEvent", "TrainResult", "train"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (defaults: the paper's).

    ``class_weights`` maps class names to cross-entropy weights (others 1.0).
    ``loss`` is weighted cross-entropy, Tversky (``tversky_alpha`` weighs false
    positives, ``tversky_beta`` false negatives) or their sum. ``patience``: epochs
    without a better validation mean IoU before stopping (``None``: never stop early).
    ``train_backbone`` also trains the backbone (only sensible for the small ``tiny``
    and ``demo`` backbones; the paper keeps DINOv2 frozen). ``augment=False`` turns
    augmentation off (then only the resize to the input size remains). ``schedule``:
    constant learning rate (the paper) or cosine decay to zero, either after a linear
    warm-up of ``warmup_epochs``.
    """

    epochs: int = 75
    batch_size: int = 12
    lr: float = 1e-5
    weight_decay: float = 0.01
    class_weights: dict[str, float] = field(
        default_factory=lambda: {"eruption_column": 3.0, "lava": 3.0}
    )
    loss: LossName = "ce"
    tversky_alpha: float = 0.3
    tversky_beta: float = 0.7
    patience: int | None = 10
    train_backbone: bool = False
    augment: bool = True
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_epochs: float = 0.0
    seed: int = 0
    device: str | None = None
    eval_batch_size: int = 16

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"loss {self.loss!r} is unknown; use one of {', '.join(LOSSES)}")
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError("epochs and batch sizes must be >= 1")
        if not self.lr > 0:
            raise ConfigError(f"learning rate must be > 0, got {self.lr}")
        if self.schedule not in ("constant", "cosine"):
            raise ConfigError(f"schedule {self.schedule!r} is unknown; use constant or cosine")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be >= 1 (or None), got {self.patience}")
        unknown = set(self.class_weights) - set(MODEL_CLASSES)
        if unknown:
            raise ConfigError(
                f"class_weights names unknown classes {sorted(unknown)}; "
                f"valid: {', '.join(MODEL_CLASSES)}"
            )

    def weight_vector(self) -> list[float]:
        return [float(self.class_weights.get(name, 1.0)) for name in MODEL_CLASSES]

    def lr_at(self, step: int, steps_per_epoch: int) -> float:
        """Learning rate of global step ``step`` (0-based): warm-up, then constant or cosine."""
        total = max(1, self.epochs * steps_per_epoch)
        warm = round(self.warmup_epochs * steps_per_epoch)
        if step < warm:
            return self.lr * (step + 1) / warm
        if self.schedule == "constant":
            return self.lr
        progress = (step - warm) / max(1, total - warm)
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@dataclass(frozen=True)
class TrainEvent:
    """Progress report: ``kind`` is ``"batch"`` (after each step) or ``"epoch"``.

    ``record`` is the epoch's history row for ``"epoch"`` events (``None`` otherwise).
    An ``"epoch"`` event comes after the epoch's checkpoint is written, so a callback
    may raise (e.g. ``KeyboardInterrupt``) and the run can be resumed.
    """

    kind: str
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    record: dict[str, Any] | None = None


@dataclass
class TrainResult:
    """What :func:`train` returns; the model passed in holds the best weights."""

    history: list[dict[str, Any]]
    best_epoch: int
    best_val_miou: float
    stopped_early: bool
    out_dir: Path | None = None
    seconds: float = 0.0

    def history_frame(self) -> Any:
        """History as a ``pandas.DataFrame`` (one row per epoch)."""
        return pd.DataFrame(self.history)


# --------------------------------------------------------------------------- tensors


def _to_tensors(dataset: SegmentationDataset, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole dataset resized to ``size``: uint8 ``N x 3 x S x S`` and uint8 ``N x S x S``."""
    n = len(dataset)
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    masks = torch.empty(n, size, size, dtype=torch.uint8)
    for i in range(n):
        img, mask = dataset[i]
        img_t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255
        mask_t = torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64))[None]
        img_r, mask_r = resize_pair(img_t, mask_t, size)
        images[i] = (img_r[0] * 255).round().clamp(0, 255).to(torch.uint8)
        masks[i] = mask_r[0].to(torch.uint8)
    return images, masks


def _batches(n: int, batch_size: int, order: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, n, batch_size):
        yield list(order[start : start + batch_size])


def _logits(model: PlumeNet, x: torch.Tensor, train_backbone: bool) -> torch.Tensor:
    if train_backbone:
        return model(x)
    with torch.no_grad():
        feats = model.backbone(x)
    grid = model.head(feats)
    return F.interpolate(grid, size=x.shape[-2:], mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------- validation


def _validate(
    model: PlumeNet,
    images: torch.Tensor,
    masks: torch.Tensor,
    loss_fn: Callable[..., torch.Tensor],
    batch_size: int,
) -> tuple[np.ndarray, float]:
    """Confusion matrix and mean loss over pre-resized tensors (one forward pass)."""
    k = model.config.num_classes
    cm = np.zeros((k, k), dtype=np.int64)
    device = model.device
    total, n = 0.0, 0
    with torch.inference_mode():
        for idx in _batches(len(images), batch_size, range(len(images))):
            x = model.normalize(images[idx].to(device))
            target = masks[idx].to(torch.int64).to(device)
            logits = model(x)
            total += float(loss_fn(logits, target)) * len(idx)
            n += len(idx)
            pred = logits.argmax(1).cpu().numpy()
            cm += confusion_matrix(masks[idx].numpy(), pred, k, ignore=IGNORE_INDEX)
    return cm, total / max(n, 1)


# --------------------------------------------------------------------------- training


def train(
    model: PlumeNet,
    train_data: SegmentationDataset,
    val_data: SegmentationDataset,
    config: TrainConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    resume: bool = True,
    progress: Callable[[TrainEvent], None] | None = None,
    model_id: str = "plumenet-finetuned",
    metadata: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` in place; it ends holding the weights of the best epoch.

    ``train_data``/``val_data``: :class:`SegmentationDataset`. See the module docstring
    for checkpoints, resuming and outputs. ``metadata`` is added to the saved model's.
    """
    config = config or TrainConfig()
    if len(train_data) == 0 or len(val_data) == 0:
        raise ConfigError(
            f"training needs images in both splits (train {len(train_data)}, "
            f"validation {len(val_data)}); label more images or change the split"
        )
    device = resolve_device(config.device)
    size = model.config.input_size
    t_start = time.perf_counter()
    train_x, train_y = _to_tensors(train_data, size)
    val_x, val_y = _to_tensors(val_data, size)
    log.info("data: %d train, %d validation images at %d px", len(train_x), len(val_x), size)

    model.to(device)
    backbone = model.backbone
    if hasattr(backbone, "trainable"):
        backbone.trainable = config.train_backbone
    if config.train_backbone and model.config.hf_backbone:
        log.warning("training the pretrained backbone %s too", model.config.hf_backbone)
    params = (
        [p for p in model.parameters() if p.requires_grad]
        if config.train_backbone
        else list(model.head.parameters())
    )
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    weights = torch.tensor(config.weight_vector(), dtype=torch.float32, device=device)
    loss_fn = segmentation_loss(config.loss, weights, config.tversky_alpha, config.tversky_beta)
    aug_cfg = AugmentConfig()

    out = Path(out_dir) if out_dir is not None else None
    history: list[dict[str, Any]] = []
    best_miou, best_epoch, bad_epochs = -math.inf, 0, 0
    start_epoch = 1
    best_state: dict[str, torch.Tensor] | None = None
    doc: dict[str, Any] | None = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        doc = load_checkpoint(out, model, optimizer) if resume else None
        if doc is not None:
            history = doc["history"]
            best_miou = doc["best_val_miou"] if doc["best_val_miou"] is not None else -math.inf
            best_epoch, bad_epochs = doc["best_epoch"], doc["bad_epochs"]
            start_epoch = doc["epoch"] + 1
            log.info("resuming %s after epoch %d", out, doc["epoch"])
            if doc.get("stopped_early"):
                start_epoch = config.epochs + 1
            if (out / "model.safetensors").is_file() and best_epoch:
                best_state = {
                    k: v.detach().clone()
                    for k, v in load_model(str(out)).model.state_dict().items()
                }
    stopped_early = bool(doc and doc.get("stopped_early"))
    steps = math.ceil(len(train_x) / config.batch_size)
    for epoch in range(start_epoch, config.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        order = torch.randperm(len(train_x), generator=gen).tolist()
        total_loss, seen = 0.0, 0
        for step, idx in enumerate(_batches(len(order), config.batch_size, order), start=1):
            for group in optimizer.param_groups:
                group["lr"] = config.lr_at((epoch - 1) * steps + step - 1, steps)
            imgs = train_x[idx].float().div_(255)
            masks = train_y[idx].to(torch.int64)
            if config.augment:
                imgs, masks = augment_batch(imgs, masks, gen, aug_cfg, out_size=size)
            x = model.normalize(imgs.to(device))
            logits = _logits(model, x, config.train_backbone)
            loss = loss_fn(logits, masks.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_value = float(loss.detach())
            total_loss += loss_value * len(idx)
            seen += len(idx)
            if progress is not None:
                progress(TrainEvent("batch", epoch, config.epochs, step, steps, loss_value))
        model.eval()
        cm, val_loss = _validate(model, val_x, val_y, loss_fn, config.eval_batch_size)
        val = segmentation_metrics(cm, model.classes)
        record = {
            "epoch": epoch,
            "train_loss": total_loss / max(seen, 1),
            "val_loss": val_loss,
            "val_pixel_accuracy": val["pixel_accuracy"],
            "val_pixel_accuracy_no_background": val["pixel_accuracy_no_background"],
            "val_mean_iou": val["mean_iou"],
            "seconds": time.perf_counter() - t0,
        }
        history.append(record)
        miou = val["mean_iou"] if not math.isnan(val["mean_iou"]) else -math.inf
        improved = miou > best_miou
        if improved:
            best_miou, best_epoch, bad_epochs = miou, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if out is not None:
                meta = {
                    **(metadata or {}),
                    "training": {**_config_json(config), "best_epoch": epoch},
                    "validation": {
                        "mean_iou": val["mean_iou"],
                        "pixel_accuracy": val["pixel_accuracy"],
                        "pixel_accuracy_no_background": val["pixel_accuracy_no_background"],
                    },
                }
                save_model(model, out, model_id=model_id, metadata=to_jsonable(meta))
        else:
            bad_epochs += 1
        stopped_early = config.patience is not None and bad_epochs >= config.patience
        log.info(
            "epoch %d/%d loss %.4f val mIoU %.4f (best %.4f @ %d)",
            epoch,
            config.epochs,
            record["train_loss"],
            record["val_mean_iou"],
            best_miou,
            best_epoch,
        )
        if out is not None:
            save_checkpoint(
                out,
                model,
                optimizer,
                {
                    "epoch": epoch,
                    "history": history,
                    "best_val_miou": best_miou if math.isfinite(best_miou) else None,
                    "best_epoch": best_epoch,
                    "bad_epochs": bad_epochs,
                    "stopped_early": stopped_early,
                    "config": _config_json(config),
                },
            )
            write_history(history, out)
        if progress is not None:
            progress(
                TrainEvent(
                    "epoch", epoch, config.epochs, steps, steps, record["train_loss"], record
                )
            )
        if stopped_early:
            log.info("early stop: no better validation mean IoU for %d epochs", bad_epochs)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        history=history,
        best_epoch=best_epoch,
        best_val_miou=best_miou if math.isfinite(best_miou) else math.nan,
        stopped_early=stopped_early,
        out_dir=out,
        seconds=time.perf_counter() - t_start,
    )


def _config_json(config: TrainConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(config)))
