"""Fine-tune a PlumeNet head (optionally its small backbone) and evaluate it.

The paper's recipe is the default (:class:`TrainConfig`): AdamW, learning rate 1e-5,
batch 12, 75 epochs with early stopping on the validation mean IoU, weighted
cross-entropy with higher weights for ``eruption_column`` and ``lava``, augmentation
of :mod:`plumenet.training.augment`, images resized to the model's input size.

Datasets are anything with ``len()`` and ``ds[i] -> (image uint8 H x W x 3, mask uint8
H x W of model-class indices, 255 = unlabelled)`` (:class:`SegmentationDataset`);
:class:`ArrayDataset` wraps in-memory arrays.

With an ``out_dir`` every epoch writes ``checkpoint.safetensors`` (model and optimiser
tensors) and ``checkpoint.json`` (epoch, history, best score, optimiser hyper-parameters);
a later call with the same ``out_dir`` resumes after the last finished epoch. Shuffling
and augmentation are seeded per epoch from ``seed`` + epoch, so an interrupted and
resumed run follows the same path as an uninterrupted one. The best model (by
validation mean IoU) is written with :func:`plumenet.model.weights.save_model` into
``out_dir`` (``model.safetensors`` + ``config.json``: loadable with ``--model OUT_DIR``),
and ``curves.png`` and ``history.csv`` show the training curves.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from plumenet.classes import MODEL_CLASSES
from plumenet.errors import ConfigError
from plumenet.training.metrics import confusion_matrix, segmentation_metrics, to_jsonable

if TYPE_CHECKING:
    import torch

    from plumenet.model.network import PlumeNet
    from plumenet.model.weights import LoadedModel

__all__ = [
    "ArrayDataset",
    "ListDataset",
    "SegmentationDataset",
    "TrainConfig",
    "TrainEvent",
    "TrainResult",
    "evaluate_model",
    "plot_confusion",
    "plot_curves",
    "predict_labels",
    "train",
    "write_evaluation",
    "write_history",
]

log = logging.getLogger(__name__)

CHECKPOINT_WEIGHTS = "checkpoint.safetensors"
CHECKPOINT_STATE = "checkpoint.json"
IGNORE_INDEX = 255

LossName = Literal["ce", "tversky", "ce+tversky"]


class SegmentationDataset(Protocol):
    """``len(ds)`` samples; ``ds[i]`` is ``(image uint8 H x W x 3, mask uint8 H x W)``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class ArrayDataset:
    """In-memory images (``N x H x W x 3`` uint8) and masks (``N x H x W`` model classes)."""

    images: np.ndarray
    labels: np.ndarray
    names: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(f"images must be N x H x W x 3, got {self.images.shape}")
        if self.labels.shape != self.images.shape[:3]:
            raise ValueError(
                f"labels shape {self.labels.shape} does not match images {self.images.shape[:3]}"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.images[index], self.labels[index]


class ListDataset:
    """Samples of any sizes held in a list of ``(image, mask)`` pairs."""

    def __init__(
        self, pairs: Sequence[tuple[np.ndarray, np.ndarray]], names: Sequence[str] | None = None
    ) -> None:
        for i, (img, mask) in enumerate(pairs):
            if img.ndim != 3 or img.shape[-1] != 3 or mask.shape != img.shape[:2]:
                raise ValueError(
                    f"sample {i}: image {img.shape} and mask {mask.shape} do not match "
                    "(need H x W x 3 and H x W)"
                )
        self.pairs = list(pairs)
        self.names = list(names) if names is not None else None

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.pairs[index]


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
        if self.loss not in ("ce", "tversky", "ce+tversky"):
            raise ConfigError(f"loss {self.loss!r} is unknown; use one of ce, tversky, ce+tversky")
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
        import pandas as pd

        return pd.DataFrame(self.history)


# --------------------------------------------------------------------------- tensors


def _resolve_device(device: str | None) -> torch.device:
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _to_tensors(dataset: SegmentationDataset, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole dataset resized to ``size``: uint8 ``N x 3 x S x S`` and uint8 ``N x S x S``."""
    import torch

    from plumenet.training.augment import resize_pair

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
    import torch
    import torch.nn.functional as F

    if train_backbone:
        return model(x)
    with torch.no_grad():
        feats = model.backbone(x)
    grid = model.head(feats)
    return F.interpolate(grid, size=x.shape[-2:], mode="bilinear", align_corners=False)


def _tversky_loss(
    logits: torch.Tensor, target: torch.Tensor, alpha: float, beta: float, weights: torch.Tensor
) -> torch.Tensor:
    """1 - Tversky index, averaged over classes present in truth or prediction (weighted)."""
    import torch
    import torch.nn.functional as F

    c = logits.shape[1]
    valid = (target != IGNORE_INDEX).unsqueeze(1).to(logits.dtype)
    probs = torch.softmax(logits, dim=1) * valid
    onehot = F.one_hot(target.clamp(max=c - 1), c).permute(0, 3, 1, 2).to(logits.dtype) * valid
    dims = (0, 2, 3)
    tp = (probs * onehot).sum(dims)
    fp = (probs * (1 - onehot)).sum(dims)
    fn = ((1 - probs) * onehot).sum(dims)
    eps = 1e-6
    index = (tp + eps) / (tp + alpha * fp + beta * fn + eps)
    w = weights.to(logits.dtype)
    return ((1 - index) * w).sum() / w.sum()


def _loss_fn(config: TrainConfig, device: torch.device) -> Callable[..., torch.Tensor]:
    import torch
    import torch.nn.functional as F

    weights = torch.tensor(config.weight_vector(), dtype=torch.float32, device=device)

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros(())
        if config.loss in ("ce", "ce+tversky") and (target != IGNORE_INDEX).any():
            total = total + F.cross_entropy(
                logits, target, weight=weights, ignore_index=IGNORE_INDEX
            )
        if config.loss in ("tversky", "ce+tversky"):
            total = total + _tversky_loss(
                logits, target, config.tversky_alpha, config.tversky_beta, weights
            )
        return total

    return loss


# --------------------------------------------------------------------------- checkpoints


def _save_checkpoint(
    out_dir: Path, model: PlumeNet, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for idx, pstate in opt["state"].items():
        for name, value in pstate.items():
            tensors[f"optim.{idx}.{name}"] = value.detach().cpu().contiguous()
    tensors = {k: v.clone() for k, v in tensors.items()}
    doc = dict(state)
    doc["param_groups"] = opt["param_groups"]
    tmp_w = out_dir / (CHECKPOINT_WEIGHTS + ".tmp")
    tmp_s = out_dir / (CHECKPOINT_STATE + ".tmp")
    save_file(tensors, str(tmp_w))
    tmp_s.write_text(json.dumps(doc, indent=1, allow_nan=True))
    tmp_w.replace(out_dir / CHECKPOINT_WEIGHTS)
    tmp_s.replace(out_dir / CHECKPOINT_STATE)


def _load_checkpoint(
    out_dir: Path, model: PlumeNet, optimizer: torch.optim.Optimizer
) -> dict[str, Any] | None:
    from safetensors.torch import load_file

    w_path, s_path = out_dir / CHECKPOINT_WEIGHTS, out_dir / CHECKPOINT_STATE
    if not (w_path.is_file() and s_path.is_file()):
        return None
    doc = json.loads(s_path.read_text())
    tensors = load_file(str(w_path), device="cpu")
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(model_state, strict=True)
    except RuntimeError as err:
        raise ConfigError(
            f"checkpoint in {out_dir} does not fit this model ({str(err).splitlines()[0]}); "
            "use another --out directory or delete the checkpoint files to start afresh"
        ) from err
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": doc.pop("param_groups")})
    return doc


# --------------------------------------------------------------------------- evaluation


def _validate(
    model: PlumeNet,
    images: torch.Tensor,
    masks: torch.Tensor,
    loss_fn: Callable[..., torch.Tensor],
    batch_size: int,
) -> tuple[np.ndarray, float]:
    """Confusion matrix and mean loss over pre-resized tensors (one forward pass)."""
    import torch

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


def predict_labels(
    model: PlumeNet, image: np.ndarray, *, at_original_resolution: bool = True
) -> np.ndarray:
    """Class map of one ``H x W x 3`` uint8 image.

    The image is resized to the model's input size; logits are upsampled bilinearly to
    ``H x W`` (``at_original_resolution``, as the paper) before the argmax, otherwise the
    map is at input size.
    """
    import torch
    import torch.nn.functional as F

    from plumenet.training.augment import resize_pair

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
) -> dict[str, Any]:
    """The paper's Table 1 and Figure 3 over a labelled dataset.

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
            import torch

            from plumenet.training.augment import resize_pair

            _, m = resize_pair(
                torch.zeros(1, 3, *mask.shape),
                torch.from_numpy(mask.astype(np.int64))[None],
                pred.shape[0],
            )
            mask = m[0].numpy()
        cm = confusion_matrix(mask, pred, k, ignore=IGNORE_INDEX)
        total += cm
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
    import torch

    from plumenet.training.augment import AugmentConfig, augment_batch

    config = config or TrainConfig()
    if len(train_data) == 0 or len(val_data) == 0:
        raise ConfigError(
            f"training needs images in both splits (train {len(train_data)}, "
            f"validation {len(val_data)}); label more images or change the split"
        )
    device = _resolve_device(config.device)
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
    loss_fn = _loss_fn(config, device)
    aug_cfg = AugmentConfig()

    out = Path(out_dir) if out_dir is not None else None
    history: list[dict[str, Any]] = []
    best_miou, best_epoch, bad_epochs = -math.inf, 0, 0
    start_epoch = 1
    best_state: dict[str, torch.Tensor] | None = None
    doc: dict[str, Any] | None = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        doc = _load_checkpoint(out, model, optimizer) if resume else None
        if doc is not None:
            history = doc["history"]
            best_miou = doc["best_val_miou"] if doc["best_val_miou"] is not None else -math.inf
            best_epoch, bad_epochs = doc["best_epoch"], doc["bad_epochs"]
            start_epoch = doc["epoch"] + 1
            log.info("resuming %s after epoch %d", out, doc["epoch"])
            if doc.get("stopped_early"):
                start_epoch = config.epochs + 1
            if (out / "model.safetensors").is_file() and best_epoch:
                from plumenet.model.weights import load_model

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
                from plumenet.model.weights import save_model

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
            _save_checkpoint(
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


# --------------------------------------------------------------------------- outputs


def write_history(history: list[dict[str, Any]], out_dir: Path) -> None:
    """``history.csv`` and ``curves.png`` in ``out_dir``."""
    import pandas as pd

    pd.DataFrame(history).to_csv(out_dir / "history.csv", index=False)
    plot_curves(history, out_dir / "curves.png")


def plot_curves(history: list[dict[str, Any]], path: str | Path) -> Path:
    """Loss, validation accuracy without background and mean IoU per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5), constrained_layout=True)
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
    plt.close(fig)
    return path


def plot_confusion(metrics: dict[str, Any], path: str | Path) -> Path:
    """Row-normalised confusion matrix (percent per true class) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(metrics["classes"])
    norm = np.array(metrics["confusion_matrix_normalized"], dtype=float) * 100
    fig, ax = plt.subplots(figsize=(7, 6), constrained_layout=True)
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
    plt.close(fig)
    return path


def write_evaluation(metrics: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write an :func:`evaluate_model` result: ``metrics.json``, ``per_class.csv``,
    ``confusion_matrix.csv`` (row-normalised), ``confusion_counts.csv``,
    ``confusion_matrix.png`` and ``per_image.csv``. Returns the paths by name."""
    import pandas as pd

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
