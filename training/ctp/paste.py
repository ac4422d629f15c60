"""CtP patch pasting: make the clip whose patches the network must track (paper §3.3).

For each trajectory (largest first, as ``PatchMask._apply_image`` in microsoft/CtP
``pyvrl/models/pretraining/ctp/ctp_transforms.py``): copy the image patch under the
trajectory's box in one random frame of the same clip, then paste it, resized to the
trajectory's box, into the frames: frame 0 always, every other frame with probability
``paste_prob`` (0.8). Frames where it is not pasted keep their targets: the masked region
model (MRM) makes the network infer the position from motion, not find it by
appearance. The paste goes through a mask (rectangle, ellipse or rhombus; soft edges
with probability ``soft_prob``) and an opacity ``alpha ~ U(0.8, 1.0)``.

Choices the reference leaves open, as :class:`PasteConfig` fields: ``soft_prob`` = 0.3
and a soft edge 15 % of the box wide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MASK_SHAPES = ("rectangle", "ellipse", "rhombus")


@dataclass(frozen=True)
class PasteConfig:
    paste_prob: float = 0.8
    alpha_range: tuple[float, float] = (0.8, 1.0)
    soft_prob: float = 0.3
    soft_width: float = 0.15


def patch_mask(shape: str, height: int, width: int, soft: float = 0.0) -> torch.Tensor:
    """(height, width) opacity in [0, 1] of a mask shape; ``soft``: edge width (fraction)."""
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height * 2 - 1
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width * 2 - 1
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    if shape == "rectangle":
        distance = torch.maximum(x.abs(), y.abs())
    elif shape == "ellipse":
        distance = torch.sqrt(x * x + y * y)
    elif shape == "rhombus":
        distance = x.abs() + y.abs()
    else:
        raise ValueError(f"mask shape must be one of {MASK_SHAPES}, got {shape!r}")
    if soft <= 0:
        return (distance <= 1).float()
    return ((1 - distance) / soft).clamp(0, 1)


def paste_patches(clip: torch.Tensor, boxes: np.ndarray, rng: np.random.Generator,
                  config: PasteConfig = PasteConfig()) -> tuple[torch.Tensor, np.ndarray]:
    """Paste one patch per trajectory into ``clip``.

    Args:
        clip: ``(3, T, H, W)`` float pixels (0..255).
        boxes: ``(N, T, 4)`` cx/cy/w/h trajectories (largest first).

    Returns:
        The new clip and ``visible`` ``(N, T)`` bool: where each patch was pasted.
    """
    out = clip.clone()
    _, num_frames, height, width = clip.shape
    visible = np.zeros(boxes.shape[:2], dtype=bool)
    for n, trajectory in enumerate(boxes):
        source = int(rng.integers(num_frames))
        patch = _crop(clip[:, source], trajectory[source])
        if patch is None:
            continue
        shape = str(rng.choice(MASK_SHAPES))
        soft = config.soft_width if rng.random() < config.soft_prob else 0.0
        alpha = float(rng.uniform(*config.alpha_range))
        for t in range(num_frames):
            if t > 0 and rng.random() >= config.paste_prob:
                continue
            visible[n, t] = _paste(out[:, t], patch, trajectory[t], shape, soft, alpha)
    return out, visible


def _box_pixels(box: np.ndarray, height: int, width: int):
    cx, cy, w, h = box
    x1, y1 = int(round(cx - w / 2)), int(round(cy - h / 2))
    x2, y2 = x1 + max(1, int(round(w))), y1 + max(1, int(round(h)))
    return x1, y1, x2, y2


def _crop(frame: torch.Tensor, box: np.ndarray) -> torch.Tensor | None:
    _, height, width = frame.shape
    x1, y1, x2, y2 = _box_pixels(box, height, width)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    if x2 <= x1 or y2 <= y1:
        return None
    return frame[:, y1:y2, x1:x2]


def _paste(frame: torch.Tensor, patch: torch.Tensor, box: np.ndarray, shape: str, soft: float,
           alpha: float) -> bool:
    """Composite ``patch`` resized to ``box`` into ``frame`` in place; False if off-frame."""
    _, height, width = frame.shape
    x1, y1, x2, y2 = _box_pixels(box, height, width)
    resized = F.interpolate(patch[None], size=(y2 - y1, x2 - x1), mode="bilinear",
                            align_corners=False)[0]
    opacity = alpha * patch_mask(shape, y2 - y1, x2 - x1, soft)
    # clip the box to the frame
    fx1, fy1, fx2, fy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    if fx2 <= fx1 or fy2 <= fy1:
        return False
    px1, py1 = fx1 - x1, fy1 - y1
    px2, py2 = px1 + (fx2 - fx1), py1 + (fy2 - fy1)
    region = frame[:, fy1:fy2, fx1:fx2]
    weight = opacity[py1:py2, px1:px2]
    frame[:, fy1:fy2, fx1:fx2] = weight * resized[:, py1:py2, px1:px2] + (1 - weight) * region
    return True
