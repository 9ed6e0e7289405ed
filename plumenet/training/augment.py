"""Joint image + mask augmentation on batches, in plain torch (no torchvision).

The paper's recipe: horizontal and vertical flips, rotation up to 20 degrees, colour
jitter and a random resized crop with scale 0.75-1.1, then a resize to the model's
input size. Geometry is one affine warp per sample (``affine_grid`` + ``grid_sample``):
the image is sampled bilinearly, the mask with nearest neighbour, and mask pixels that
come from outside the source image (rotation corners, crops larger than the image)
get :data:`plumenet.training.datasets.IGNORE_INDEX` (unlabelled) so the loss skips them.
Flips use ``torch.flip`` (exact).

All randomness comes from the ``torch.Generator`` passed in: the same generator state
gives the same augmentation.

Layouts: images ``B x 3 x H x W`` float in 0-1, masks ``B x H x W`` int64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from plumenet.training.datasets import IGNORE_INDEX

__all__ = ["AugmentConfig", "augment_batch", "color_jitter", "resize_pair"]


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each augmentation (paper defaults).

    ``scale`` is the crop's area relative to the image (values above 1 zoom out and
    bring in unlabelled border); ``ratio`` its aspect-ratio range. Jitter factors are
    drawn uniformly from ``[1 - x, 1 + x]``; ``hue`` is a rotation of the chroma plane
    by up to ``hue * 360`` degrees.
    """

    hflip: float = 0.5
    vflip: float = 0.5
    max_rotation: float = 20.0
    scale: tuple[float, float] = (0.75, 1.1)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02

    def __post_init__(self) -> None:
        for name in ("hflip", "vflip"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"augment {name} probability must be in [0, 1], got {p}")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"augment scale must be 0 < low <= high, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"augment ratio must be 0 < low <= high, got {self.ratio}")


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def _affine_params(
    n: int, config: AugmentConfig, height: int, width: int, generator: torch.Generator
) -> torch.Tensor:
    """``n x 2 x 3`` matrices mapping output to input normalised coordinates."""
    scale = _uniform(n, *config.scale, generator)
    log_r = _uniform(n, math.log(config.ratio[0]), math.log(config.ratio[1]), generator)
    ratio = torch.exp(log_r)
    # crop half-extent in normalised units (1 = the whole image)
    cw = torch.sqrt(scale * ratio)
    ch = torch.sqrt(scale / ratio)
    # centre: anywhere that keeps the crop inside when it fits, centred-ish otherwise
    cx = (1 - cw).abs() * (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1)
    cy = (1 - ch).abs() * (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1)
    angle = torch.deg2rad(_uniform(n, -config.max_rotation, config.max_rotation, generator))
    cos, sin = torch.cos(angle), torch.sin(angle)
    # rotate in pixel space: D^-1 R D with D = diag(W, H), then scale by the crop
    a = height / width
    m = torch.zeros(n, 2, 3, dtype=torch.float64)
    m[:, 0, 0] = cos * cw
    m[:, 0, 1] = -sin * a * ch
    m[:, 1, 0] = sin / a * cw
    m[:, 1, 1] = cos * ch
    m[:, 0, 2] = cx
    m[:, 1, 2] = cy
    return m


def _rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def color_jitter(
    images: torch.Tensor, config: AugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """Brightness, contrast, saturation and hue jitter (fixed order) on ``B x 3 x H x W`` 0-1."""
    n = images.shape[0]
    shape = (n, 1, 1, 1)

    def factor(x: float) -> torch.Tensor:
        return _uniform(n, max(0.0, 1 - x), 1 + x, generator).to(images.dtype).view(shape)

    x = images * factor(config.brightness)
    mean = _rgb_to_gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x = mean + factor(config.contrast) * (x - mean)
    gray = _rgb_to_gray(x)
    x = gray + factor(config.saturation) * (x - gray)
    if config.hue > 0:
        theta = (2 * math.pi * _uniform(n, -config.hue, config.hue, generator)).to(images.dtype)
        # YIQ chroma rotation: a cheap, smooth hue shift
        to_yiq = torch.tensor(
            [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
            dtype=images.dtype,
        )
        from_yiq = torch.linalg.inv(to_yiq)
        rot = torch.zeros(n, 3, 3, dtype=images.dtype)
        rot[:, 0, 0] = 1
        rot[:, 1, 1] = torch.cos(theta)
        rot[:, 1, 2] = -torch.sin(theta)
        rot[:, 2, 1] = torch.sin(theta)
        rot[:, 2, 2] = torch.cos(theta)
        mat = from_yiq @ rot @ to_yiq  # n x 3 x 3
        x = torch.einsum("nij,njhw->nihw", mat, x)
    return x.clamp_(0.0, 1.0)


def augment_batch(
    images: torch.Tensor,
    masks: torch.Tensor,
    generator: torch.Generator,
    config: AugmentConfig | None = None,
    out_size: int | tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment images (``B x 3 x H x W`` float 0-1) and masks (``B x H x W`` int) jointly.

    Returns ``(images, masks)`` at ``out_size`` (default: the input size); masks are
    int64 with :data:`IGNORE_INDEX` where the output pixel has no source pixel.
    """
    config = config or AugmentConfig()
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be B x 3 x H x W, got {tuple(images.shape)}")
    if masks.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"masks must be B x H x W matching images, got {tuple(masks.shape)}")
    n, _, h, w = images.shape
    if out_size is None:
        oh, ow = h, w
    elif isinstance(out_size, int):
        oh = ow = out_size
    else:
        oh, ow = out_size
    theta = _affine_params(n, config, h, w, generator)
    grid = F.affine_grid(theta.to(torch.float32), [n, 1, oh, ow], align_corners=False)
    imgs = F.grid_sample(
        images.to(torch.float32), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    labels = F.grid_sample(
        masks.to(torch.float32).unsqueeze(1),
        grid,
        mode="nearest",
        padding_mode="zeros",
        align_corners=False,
    )[:, 0]
    labels = labels.round().to(torch.int64)
    outside = (grid.abs() > 1.0).any(dim=-1)
    labels[outside] = IGNORE_INDEX
    hflip = torch.rand(n, generator=generator) < config.hflip
    vflip = torch.rand(n, generator=generator) < config.vflip
    imgs[hflip] = imgs[hflip].flip(-1)
    labels[hflip] = labels[hflip].flip(-1)
    imgs[vflip] = imgs[vflip].flip(-2)
    labels[vflip] = labels[vflip].flip(-2)
    imgs = color_jitter(imgs, config, generator)
    return imgs, labels


def resize_pair(
    images: torch.Tensor, masks: torch.Tensor | None, size: int | tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Resize ``B x 3 x H x W`` images (bilinear, antialiased) and ``B x H x W`` masks (nearest)."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) != hw:
        images = F.interpolate(
            images.to(torch.float32), size=hw, mode="bilinear", antialias=True, align_corners=False
        )
    if masks is not None and tuple(masks.shape[-2:]) != hw:
        masks = (
            F.interpolate(masks[:, None].to(torch.float32), size=hw, mode="nearest-exact")[:, 0]
            .round()
            .to(torch.int64)
        )
    return images, masks
