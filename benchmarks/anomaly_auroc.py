"""AUROC of the PaDiM score variants on synthetic cameras (a measurement, not a test).

For each synthetic camera (one fixed mountain per ``view_seed``; daytime; clouds, haze and
light vary) the bundled demo backbone (3 blocks, 64 wide, 224 px) is fitted on quiet
frames, then scores ``--test`` frames with one emission each (eruption column, ash cloud,
lava, translucent gas plume, in turn) against ``--test`` quiet frames. The variants are
the seed poster's (Popescu et al. 2024): PaDiM (Mahalanobis, one Gaussian over all
layers), NLML, wMaha and wNLML (one Gaussian per layer, weights ``rms`` or ``depth``),
each with the published image score (upsample + blur sigma 4 + max) and the raw patch max.
Also times the two image scores on the 518 px model's 37 x 37 grid against the backbone.

Usage::

    python -m benchmarks.anomaly_auroc [--views 7,11,23,31] [--baseline 120] [--test 48]
    python -m benchmarks.anomaly_auroc --timing-only

Prints markdown tables.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import UTC, datetime

import numpy as np
import torch

from plumenet.anomaly.evaluation import auroc
from plumenet.anomaly.fit import fit_padim
from plumenet.anomaly.image_score import image_scores
from plumenet.anomaly.scorer import AnomalyScorer
from plumenet.model.registry import build_model
from plumenet.model.weights import load_model
from plumenet.synthetic.render import render_scene
from plumenet.synthetic.spec import random_scene_spec

KINDS = ("eruption_column", "ash_emissions", "lava", "non_ash_emissions")
VARIANTS: dict[str, dict[str, object]] = {
    "PaDiM": {"mode": "concat", "distance": "mahalanobis"},
    "NLML": {"mode": "concat", "distance": "nlml"},
    "wMaha rms": {"mode": "weighted", "distance": "mahalanobis", "layer_weights": "rms"},
    "wMaha depth": {"mode": "weighted", "distance": "mahalanobis", "layer_weights": "depth"},
    "wNLML rms": {"mode": "weighted", "distance": "nlml", "layer_weights": "rms"},
    "wNLML depth": {"mode": "weighted", "distance": "nlml", "layer_weights": "depth"},
}


def frames(view: int, seed: int, n: int, size: int, active: bool) -> np.ndarray:
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        rng = np.random.default_rng([view, seed, i])
        activity = [KINDS[i % len(KINDS)]] if active else []
        spec = random_scene_spec(
            rng, size=(size, size), view_seed=view, activity=activity, night=False
        )
        out[i] = render_scene(spec)[0]
    return out


def time_image_scores(repeats: int = 5) -> dict[str, float]:
    """Seconds per frame: each image score on a 16 x 37 x 37 patch map at 518 px, and the
    exact ViT-S/14-reg backbone (random weights) on a batch of 2 frames at 518 px."""
    maps = torch.rand(16, 37, 37)
    out = {}
    for reduction in ("max", "blur"):
        image_scores(maps, 518, reduction=reduction)
        t0 = time.perf_counter()
        for _ in range(repeats):
            image_scores(maps, 518, reduction=reduction)
        out[reduction] = (time.perf_counter() - t0) / repeats / maps.shape[0]
    net = build_model("vits14-reg", seed=0).eval()
    x = torch.randn(2, 3, 518, 518)
    with torch.inference_mode():
        t0 = time.perf_counter()
        net.backbone.forward_layers(x, [4, 8, 12])
        out["backbone"] = (time.perf_counter() - t0) / x.shape[0]
    return out


def print_timing() -> None:
    t = time_image_scores()
    print(
        f"Per frame at 518 px: backbone (layers 4, 8, 12) {t['backbone'] * 1e3:.0f} ms, "
        f"image score blur {t['blur'] * 1e3:.2f} ms ({t['blur'] / t['backbone']:.2%} of the "
        f"backbone), max {t['max'] * 1e3:.4f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", default="7,11,23,31")
    parser.add_argument("--baseline", type=int, default=120)
    parser.add_argument("--test", type=int, default=48)
    parser.add_argument("--timing-only", action="store_true", help="Only time the scores.")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.timing_only:
        print_timing()
        return
    loaded = load_model("demo", device="cpu")
    size = loaded.input_size
    views = [int(v) for v in args.views.split(",")]
    labels = np.r_[np.ones(args.test), np.zeros(args.test)]
    kind_of = np.array([KINDS[i % len(KINDS)] for i in range(args.test)])
    table: dict[tuple[str, str], list[float]] = {}
    per_kind: dict[tuple[str, str, str], list[float]] = {}
    started = time.perf_counter()
    for view in views:
        baseline = frames(view, 1, args.baseline, size, active=False)
        test = np.concatenate(
            [frames(view, 2, args.test, size, True), frames(view, 3, args.test, size, False)]
        )
        for name, options in VARIANTS.items():
            for reduction in ("blur", "max"):
                padim = fit_padim(
                    loaded, np.array_split(baseline, 8), seed=0, reduction=reduction, **options
                )
                scores = AnomalyScorer(padim, loaded).score_frames(test)
                table.setdefault((name, reduction), []).append(auroc(scores, labels))
                quiet = scores[args.test :]
                for kind in KINDS:
                    active = scores[: args.test][kind_of == kind]
                    value = auroc(
                        np.r_[active, quiet], np.r_[np.ones(active.size), np.zeros(quiet.size)]
                    )
                    per_kind.setdefault((name, reduction, kind), []).append(value)
    elapsed = time.perf_counter() - started
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, demo backbone "
        f"{size} px, views {views}, {args.baseline} baseline frames, {args.test} active vs "
        f"{args.test} quiet per view, {elapsed:.0f} s\n"
    )
    header = "| variant | image score | " + " | ".join(f"view {v}" for v in views)
    print(header + " | mean |")
    print("|---|---|" + "---:|" * (len(views) + 1))
    for (name, reduction), values in table.items():
        cells = " | ".join(f"{v:.3f}" for v in values)
        print(f"| {name} | {reduction} | {cells} | {np.mean(values):.3f} |")
    print("\nPer emission kind (its active frames vs all quiet frames; mean over views):\n")
    print("| variant | image score | " + " | ".join(KINDS) + " |")
    print("|---|---|" + "---:|" * len(KINDS))
    for name in VARIANTS:
        for reduction in ("blur", "max"):
            cells = " | ".join(f"{np.mean(per_kind[(name, reduction, k)]):.3f}" for k in KINDS)
            print(f"| {name} | {reduction} | {cells} |")
    print()
    print_timing()


if __name__ == "__main__":
    main()
