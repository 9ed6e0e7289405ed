"""Train the bundled demonstration model on synthetic scenes.

``python -m plumenet.training.demo_model`` renders synthetic webcam frames
(:mod:`plumenet.synthetic.scenes`) in random aspect ratios (4:3, 16:9, 1:1, 3:4, as real
webcams), trains the whole ``demo`` architecture (small backbone from scratch + head)
on them, evaluates it on held-out frames drawn from seeds never used in training, and
writes it with :func:`plumenet.model.weights.save_model` into ``plumenet/assets/demo-model/``
(``metadata.demo = true``, plus the command, seed, timing and held-out metrics).

The defaults are the settings of the bundled model (see ``docs/demo-model.md``).

Seeds: frame ``i`` of stream ``s`` comes from ``numpy.random.default_rng([seed, s, i])``;
streams :data:`TRAIN_STREAM`, :data:`VAL_STREAM` and :data:`TEST_STREAM` never overlap,
and the tests draw from :data:`CHECK_STREAM`.

The demo model is for demonstrations and tests only: it has never seen a real webcam
frame. See ``docs/demo-model.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plumenet.classes import MODEL_CLASSES, merge_labels
from plumenet.model.network import ModelConfig, count_parameters
from plumenet.model.registry import MODEL_CONFIGS, build_model
from plumenet.model.weights import DEMO_MODEL_DIR, save_model
from plumenet.synthetic.render import render_scene
from plumenet.synthetic.spec import random_scene_spec
from plumenet.training.datasets import ListDataset
from plumenet.training.evaluate import evaluate_model
from plumenet.training.loop import TrainConfig, TrainEvent, train
from plumenet.training.metrics import to_jsonable

__all__ = [
    "ASPECTS",
    "BAR",
    "CHECK_STREAM",
    "TEST_STREAM",
    "TRAIN_STREAM",
    "VAL_STREAM",
    "demo_config",
    "main",
    "meets_bar",
    "synthetic_frames",
]

log = logging.getLogger(__name__)

TRAIN_STREAM, VAL_STREAM, TEST_STREAM, CHECK_STREAM = 1, 2, 3, 4
#: Width : height of the rendered frames, cycled at random.
ASPECTS: tuple[tuple[int, int], ...] = ((4, 3), (16, 9), (1, 1), (3, 4))
#: What the demo model must reach on held-out synthetic frames.
BAR: dict[str, float] = {"pixel_accuracy_no_background": 0.90, "iou_eruption_column": 0.60}


def synthetic_frames(
    n: int, seed: int, stream: int, *, height: int = 280
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` synthetic frames (RGB uint8, model-class mask uint8) of random aspect ratio."""
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, stream, i])
        aw, ah = ASPECTS[int(rng.integers(len(ASPECTS)))]
        size = (round(height * aw / ah), height)
        rgb, label = render_scene(random_scene_spec(rng, size=size))
        out.append((rgb, merge_labels(label)))
    return out


def demo_config(input_size: int = 224, hidden: int = 64, layers: int = 3) -> ModelConfig:
    """The registered ``demo`` architecture, resized: ``input_size`` (224: a 16 x 16 patch
    grid), backbone width ``hidden`` and depth ``layers`` (4 heads)."""
    base = MODEL_CONFIGS["demo"]
    backbone = {
        **base.backbone,
        "image_size": input_size,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
    }
    return replace(base, input_size=input_size, backbone=backbone)


def cached_frames(
    cache_dir: Path | None, n: int, seed: int, stream: int, height: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`synthetic_frames`, kept in ``cache_dir`` as an ``.npz`` to skip re-rendering."""
    if cache_dir is None:
        return synthetic_frames(n, seed, stream, height=height)
    path = cache_dir / f"frames-s{seed}-t{stream}-n{n}-h{height}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            return [(data[f"img{i}"], data[f"mask{i}"]) for i in range(n)]
    frames = synthetic_frames(n, seed, stream, height=height)
    cache_dir.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for i, (img, mask) in enumerate(frames):
        arrays[f"img{i}"], arrays[f"mask{i}"] = img, mask
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return frames


def summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers and the per-class table of an evaluation."""
    return {
        "n_images": metrics.get("n_images"),
        "pixel_accuracy": metrics["pixel_accuracy"],
        "pixel_accuracy_no_background": metrics["pixel_accuracy_no_background"],
        "mean_iou": metrics["mean_iou"],
        "classes": metrics["classes"],
    }


def meets_bar(metrics: dict[str, Any]) -> bool:
    """Whether an evaluation reaches :data:`BAR`."""
    return (
        metrics["pixel_accuracy_no_background"] >= BAR["pixel_accuracy_no_background"]
        and metrics["classes"]["eruption_column"]["iou"] >= BAR["iou_eruption_column"]
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m plumenet.training.demo_model", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--train-frames", type=int, default=2000)
    p.add_argument("--val-frames", type=int, default=100)
    p.add_argument("--test-frames", type=int, default=200)
    p.add_argument("--epochs", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup-epochs", type=float, default=0.5)
    p.add_argument("--augment", action="store_true", help="use the paper's augmentation")
    p.add_argument(
        "--class-weight",
        action="append",
        default=["non_ash_emissions=3"],
        metavar="CLASS=W",
        help="cross-entropy weight of a class (repeatable; on top of the paper's 3 for "
        "eruption_column and lava; default adds non_ash_emissions=3)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--height", type=int, default=224, help="height of rendered frames")
    p.add_argument("--input-size", type=int, default=224, help="model input size (multiple of 14)")
    p.add_argument("--hidden", type=int, default=64, help="backbone width")
    p.add_argument("--layers", type=int, default=3, help="backbone depth")
    p.add_argument("--log-every", type=int, default=25, help="log every N training steps")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch default)")
    p.add_argument(
        "--work-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "plumenet-demo-model-work",
        help="frames cache and checkpoints (default: a folder in the temp directory)",
    )
    p.add_argument("--out", type=Path, default=None, help="default: the bundled asset folder")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Train, evaluate and save the demo model; returns 0 when it meets :data:`BAR`."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or DEMO_MODEL_DIR
    command = "python -m plumenet.training.demo_model " + shlex.join(
        list(argv) if argv is not None else sys.argv[1:]
    )
    t0 = time.perf_counter()
    cache = args.work_dir / "frames"
    train_ds = ListDataset(
        cached_frames(cache, args.train_frames, args.seed, TRAIN_STREAM, args.height)
    )
    val_ds = ListDataset(cached_frames(cache, args.val_frames, args.seed, VAL_STREAM, args.height))
    t_render = time.perf_counter() - t0
    log.info("rendered %d + %d frames in %.0f s", len(train_ds), len(val_ds), t_render)

    cfg = demo_config(args.input_size, args.hidden, args.layers)
    model = build_model(cfg, seed=args.seed)
    log.info("demo model: %d parameters, input %d", count_parameters(model), cfg.input_size)
    weights = dict(TrainConfig().class_weights)
    for item in args.class_weight:
        name, _, value = item.partition("=")
        weights[name] = float(value)
    tcfg = TrainConfig(
        class_weights=weights,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=0.05,
        train_backbone=True,
        augment=args.augment,
        schedule="cosine",
        warmup_epochs=args.warmup_epochs,
        patience=None,
        seed=args.seed,
        device="cpu",
    )

    def report(event: TrainEvent) -> None:
        if event.kind == "batch" and event.step % args.log_every == 0:
            log.info(
                "epoch %d step %d/%d loss %.4f", event.epoch, event.step, event.steps, event.loss
            )

    result = train(
        model,
        train_ds,
        val_ds,
        tcfg,
        out_dir=args.work_dir,
        model_id="plumenet-demo-synthetic",
        progress=report,
    )
    t_train = time.perf_counter() - t0

    test_ds = ListDataset(
        cached_frames(cache, args.test_frames, args.seed, TEST_STREAM, args.height)
    )
    metrics = evaluate_model(model, test_ds)
    held_out = summary(metrics)
    ok = meets_bar(metrics)
    meta = {
        "demo": True,
        "description": "demonstration model trained on synthetic scenes only; not for science",
        "command": command,
        "seed": args.seed,
        "train_frames": args.train_frames,
        "val_frames": args.val_frames,
        "epochs": args.epochs,
        "best_epoch": result.best_epoch,
        "training_seconds": round(t_train, 1),
        "torch_threads": torch.get_num_threads(),
        "input_size": cfg.input_size,
        "frame_height": args.height,
        "held_out": {
            "frames": args.test_frames,
            "seed_stream": [args.seed, TEST_STREAM],
            "meets_bar": ok,
            "bar": BAR,
            **held_out,
        },
    }
    save_model(model, out, model_id="plumenet-demo-synthetic", metadata=to_jsonable(meta))
    log.info("saved the demo model to %s (training %.0f s)", out, t_train)
    table = {c: {k: round(v, 4) for k, v in metrics["classes"][c].items()} for c in MODEL_CLASSES}
    log.info("held-out metrics:\n%s", json.dumps({**held_out, "classes": table}, indent=1))
    log.info("bar %s: %s", BAR, "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
