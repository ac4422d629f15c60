"""Differentiable 3D affine cropping (ParamCrop §3.2) and its adversarial training (§3.3).

One :class:`ParamCrop` module crops one view: an MLP turns a noise vector into six
numbers ``v`` in (0, 1) (Eq. 5), the early-stopping rule detaches saturated entries
(Eq. 7), a gradient-reversal layer makes the MLP *maximise* the contrastive loss (§3.3),
the entries are mapped to their ranges (Eq. 6), assembled into the 3x4 matrix of Eq. 3
and the output grid is sampled trilinearly from the input video (Eq. 4).

Coordinates follow ``F.affine_grid``: the last axis of the grid is (x = width, y = height,
t = time), each normalised to [-1, 1] with ``align_corners=False`` (so a 64x128^2 input
cropped with ``s_p = 112/128, s_t = 1/4`` at zero offsets returns exactly the centre
112^2 pixels of frames 24..39, and ``Δt = -0.5`` moves that to frames 8..23: Eq. 3-4
under PyTorch's documented ``affine_grid`` / ``grid_sample`` conventions, checked in
``tests/test_paramcrop.py``).

Choices where the paper is silent (each a :class:`CropConfig` field):

* ``noise_dim`` m = 128, ``hidden_dim`` d = 128, noise ``n ~ N(0, I)`` drawn per clip;
  the two linear layers have no bias, literally Eq. 5, and PyTorch's default
  initialisation, which maps the noise to pre-sigmoid values near 0 (v near 0.5: both
  views start near the centre with scale 0.75, largely overlapping, as §3.3 describes).
* ``grl_scale`` = 1: the reversed gradient is -1 x the gradient (plain gradient reversal).
  The reversal sits on ``v`` right after the MLP (after the detach rule), so only the
  MLP sees the sign flip.
* Eq. 3 is taken literally: the rotation column is ``(-sin θ, s_p cos θ)`` (not
  ``s_p (-sin θ)``); ``rotation_scaled=True`` uses the similarity ``s_p R(θ)`` instead.
  With ``rotation`` off (the paper's default, θ ∈ [0, 0]) both read the same.
* ``aspect_ratio`` on: a seventh entry gives the height scale ``s_y`` in the scale range,
  ``s_p`` becomes the width scale, and Δy is bounded by ``s_y`` (Table 5's A.R.).
* ``rotation`` on: θ ∈ [-rotation_max, rotation_max] (default 30°). The paper's offset
  bounds ignore rotation, so a rotated crop's corners may leave the video; those samples
  read zeros (``grid_sample``'s default padding).
* ``spatial=False`` / ``temporal=False`` (Table 2): that part is fixed to a central crop,
  ``s_p = fixed_spatial_scale`` (default 112/128, the usual 112 centre crop of 128) and
  ``s_t = fixed_temporal_scale`` (default 0.5: 16 output frames over 32 input frames),
  with zero offsets.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import reverse_gradient  # §3.3, "gradient reversal"

# order of the entries of v (Eq. 5); index 6 exists only with aspect_ratio
S_P, S_T, THETA, DX, DY, DT, S_Y = range(7)


@dataclass(frozen=True)
class CropConfig:
    """One cropping module: ranges of Eq. 6, the MLP of Eq. 5, the rule of Eq. 7."""

    out_frames: int = 16
    out_size: int = 112
    scale_min: float = 0.5  # ŝ_p, ŝ_t lower bounds (§4: 0.5)
    scale_max: float = 1.0  # upper bounds (§4: 1.0)
    spatial: bool = True  # learn s_p, Δx, Δy (else a fixed central crop)
    temporal: bool = True  # learn s_t, Δt (else a fixed central crop)
    fixed_spatial_scale: float = 112 / 128
    fixed_temporal_scale: float = 0.5
    aspect_ratio: bool = False  # §4.2, Table 5: off
    rotation: bool = False  # §4.2, Table 5: off (θ ∈ [0, 0])
    rotation_max: float = math.pi / 6
    rotation_scaled: bool = False
    noise_dim: int = 128
    hidden_dim: int = 128
    detach_bound: float = 0.2  # b_detach of Eq. 7 (§4: 0.2); 0 disables early stopping
    grl: bool = True  # gradient reversal (§3.3); off = the MLP minimises the loss (Table 3)
    grl_scale: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.scale_min <= self.scale_max <= 1:
            raise ValueError("scale_min/scale_max must satisfy 0 < scale_min <= scale_max <= 1,"
                             f" got {self.scale_min}, {self.scale_max}")
        for name in ("fixed_spatial_scale", "fixed_temporal_scale"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in (0, 1], got {getattr(self, name)}")
        if not 0 <= self.detach_bound <= 0.5:
            raise ValueError(f"detach_bound (b_detach, Eq. 7) must lie in [0, 0.5], "
                             f"got {self.detach_bound}")
        if self.out_frames < 1 or self.out_size < 1:
            raise ValueError(f"out_frames and out_size must be >= 1, got {self.out_frames}, "
                             f"{self.out_size}")
        if self.noise_dim < 1 or self.hidden_dim < 1:
            raise ValueError("noise_dim and hidden_dim must be >= 1")
        if not 0 <= self.rotation_max <= math.pi:
            raise ValueError(f"rotation_max must lie in [0, pi] radians, got {self.rotation_max}")
        if self.grl_scale < 0:
            raise ValueError(f"grl_scale must be >= 0, got {self.grl_scale}")

    @property
    def num_params(self) -> int:
        return 7 if self.aspect_ratio else 6


# ------------------------------------------------------------------------------------
# Eq. 3 and Eq. 4: the affine matrix and the trilinear crop
# ------------------------------------------------------------------------------------
def affine_matrix(scale_x: torch.Tensor, scale_y: torch.Tensor, scale_t: torch.Tensor,
                  theta: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, dt: torch.Tensor,
                  *, rotation_scaled: bool = False) -> torch.Tensor:
    """The 3x4 matrix ``A_φ`` of Eq. 3 for every clip, ``(B, 3, 4)``.

    Rows act on (x, y, t) of the original video as ``F.affine_grid`` expects. Without
    aspect ratio ``scale_x = scale_y = s_p``; ``rotation_scaled`` multiplies the
    ``-sin θ`` / ``sin θ`` terms by the scales too (a similarity; Eq. 3 does not)."""
    cos, sin = torch.cos(theta), torch.sin(theta)
    zero = torch.zeros_like(scale_x)
    off_x = (-sin * scale_y) if rotation_scaled else -sin
    off_y = (sin * scale_x) if rotation_scaled else sin
    rows = (
        torch.stack((scale_x * cos, off_x, zero, dx), dim=-1),
        torch.stack((off_y, scale_y * cos, zero, dy), dim=-1),
        torch.stack((zero, zero, scale_t, dt), dim=-1),
    )
    return torch.stack(rows, dim=-2)


def crop_video(video: torch.Tensor, matrix: torch.Tensor, out_frames: int,
               out_size: tuple[int, int] | int) -> torch.Tensor:
    """Eq. 4: sample the ``(out_frames, H_out, W_out)`` grid of each cropped view from
    ``video`` ``(B, C, T, H, W)`` through ``matrix`` ``(B, 3, 4)``; trilinear,
    ``align_corners=False``. Differentiable with respect to ``matrix``."""
    if isinstance(out_size, int):
        out_size = (out_size, out_size)
    batch, channels = video.shape[:2]
    grid = F.affine_grid(matrix.to(video.dtype), [batch, channels, out_frames, *out_size],
                         align_corners=False)
    return F.grid_sample(video, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)


# ------------------------------------------------------------------------------------
# Eq. 5, Eq. 6, Eq. 7 and the gradient reversal of §3.3
# ------------------------------------------------------------------------------------
def early_stopping_detach(v: torch.Tensor, bound: float) -> torch.Tensor:
    """Eq. 7, per entry: ``v_i`` where ``|v_i - 0.5| <= 0.5 - b_detach``, else
    ``detach(v_i)``. Written with ``torch.where`` so the MLP stays in the graph (zero
    gradient for detached entries), which DDP needs."""
    keep = (v - 0.5).abs() <= 0.5 - bound
    return torch.where(keep, v, v.detach())


class CropGenerator(nn.Module):
    """Eq. 5: ``v = σ(W_2 δ(W_1 n))`` with ``W_1 ∈ R^{d×m}``, ``W_2 ∈ R^{k×d}`` (no
    biases, as written), ``k`` = 6 (7 with aspect ratio)."""

    def __init__(self, noise_dim: int, hidden_dim: int, num_params: int = 6) -> None:
        super().__init__()
        self.fc1 = nn.Linear(noise_dim, hidden_dim, bias=False)
        self.fc2 = nn.Linear(hidden_dim, num_params, bias=False)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(noise))))


@dataclass
class CropParams:
    """The crop each clip received, in normalised [-1, 1] coordinates of its input,
    each ``(B,)``: half-extents ``scale_x``, ``scale_y``, ``scale_t``, rotation ``theta``
    (radians) and centre offsets ``dx``, ``dy``, ``dt``; ``v`` is the MLP output
    ``(B, k)``."""

    scale_x: torch.Tensor
    scale_y: torch.Tensor
    scale_t: torch.Tensor
    theta: torch.Tensor
    dx: torch.Tensor
    dy: torch.Tensor
    dt: torch.Tensor
    v: torch.Tensor

    def matrix(self, rotation_scaled: bool = False) -> torch.Tensor:
        return affine_matrix(self.scale_x, self.scale_y, self.scale_t, self.theta, self.dx,
                             self.dy, self.dt, rotation_scaled=rotation_scaled)

    def mirrored(self, flip: torch.Tensor) -> CropParams:
        """The crops of clips whose input was mirrored (``flip`` bool ``(B,)``), described
        in the unmirrored input's coordinates: ``Δx`` and ``θ`` change sign there."""
        return dataclasses.replace(self, dx=torch.where(flip, -self.dx, self.dx),
                                   theta=torch.where(flip, -self.theta, self.theta))


def map_to_ranges(v: torch.Tensor, config: CropConfig) -> CropParams:
    """Eq. 6: ``v' = ˇv + v ⊙ (ˆv - ˇv)`` with scales in [scale_min, scale_max], θ in
    [-rotation_max, rotation_max] (or [0, 0]) and the offsets bounded by their scale,
    ``Δx ∈ [s_p - 1, 1 - s_p]``, ``Δt ∈ [s_t - 1, 1 - s_t]``, so the crop stays inside
    the video. Fixed (non-learnt) parts use a zero-width range, so gradients are zero
    there but the graph is intact."""

    def span(entry: torch.Tensor, low, high):
        return low + entry * (high - low)

    lo, hi = config.scale_min, config.scale_max
    if config.spatial:
        scale_x = span(v[:, S_P], lo, hi)
        scale_y = span(v[:, S_Y], lo, hi) if config.aspect_ratio else scale_x
        dx = span(v[:, DX], scale_x - 1, 1 - scale_x)
        dy = span(v[:, DY], scale_y - 1, 1 - scale_y)
    else:
        fixed = config.fixed_spatial_scale
        scale_x = span(v[:, S_P], fixed, fixed)
        scale_y = scale_x
        dx = span(v[:, DX], 0.0, 0.0)
        dy = span(v[:, DY], 0.0, 0.0)
    if config.temporal:
        scale_t = span(v[:, S_T], lo, hi)
        dt = span(v[:, DT], scale_t - 1, 1 - scale_t)
    else:
        fixed = config.fixed_temporal_scale
        scale_t = span(v[:, S_T], fixed, fixed)
        dt = span(v[:, DT], 0.0, 0.0)
    limit = config.rotation_max if config.rotation else 0.0
    theta = span(v[:, THETA], -limit, limit)
    return CropParams(scale_x, scale_y, scale_t, theta, dx, dy, dt, v)


class ParamCrop(nn.Module):
    """One view's cropping module (Fig. 2): noise -> MLP (Eq. 5) -> detach rule (Eq. 7)
    -> gradient reversal (§3.3) -> ranges (Eq. 6) -> matrix (Eq. 3) -> trilinear crop
    (Eq. 4)."""

    def __init__(self, config: CropConfig) -> None:
        super().__init__()
        self.config = config
        self.generator = CropGenerator(config.noise_dim, config.hidden_dim, config.num_params)

    def parameters_for(self, noise: torch.Tensor) -> CropParams:
        """The crop parameters for ``noise`` ``(B, noise_dim)`` (with the training-time
        gradient manipulations applied)."""
        v = self.generator(noise.float())
        v = early_stopping_detach(v, self.config.detach_bound)
        if self.config.grl:
            v = reverse_gradient(v, self.config.grl_scale)
        return map_to_ranges(v, self.config)

    def forward(self, video: torch.Tensor, noise: torch.Tensor
                ) -> tuple[torch.Tensor, CropParams]:
        """``video`` ``(B, 3, T, H, W)`` float -> cropped ``(B, 3, out_frames, out_size,
        out_size)`` and the :class:`CropParams` used."""
        # float32 even under bf16 autocast: a bf16 offset is off by ~1/4 pixel at 128^2
        with torch.autocast(video.device.type, enabled=False):
            params = self.parameters_for(noise)
            cropped = crop_video(video.float(), params.matrix(self.config.rotation_scaled),
                                 self.config.out_frames, self.config.out_size)
        return cropped, params


# ------------------------------------------------------------------------------------
# §4.1, Figure 5: disparity between the two views
# ------------------------------------------------------------------------------------
def view_disparity(first: CropParams, second: CropParams) -> dict[str, torch.Tensor]:
    """Per clip ``(B,)``: ``iou`` (spatio-temporal IoU of the two crop cubes),
    ``distance`` (Manhattan distance of the 3D centres) and the per-axis parts.

    Units: each axis of the video is [0, 1] (half the normalised-coordinate difference),
    so the distance lies in [0, 3 (1 - scale_min)]. Rotation is ignored (the cubes are
    taken axis-aligned; exact for θ = 0, the paper's setting). Both cubes must be given
    in the same frame: the model passes them in the coordinates of the unflipped input
    cubes (:meth:`CropParams.mirrored` for a view flipped before its crop). The data
    sampler's random crop before ParamCrop is not included (Figure 5 plots ParamCrop's
    regions)."""
    iou_num, vol1, vol2 = 1.0, 1.0, 1.0
    parts = {}
    for axis, (c1, e1, c2, e2) in {
        "x": (first.dx, first.scale_x, second.dx, second.scale_x),
        "y": (first.dy, first.scale_y, second.dy, second.scale_y),
        "t": (first.dt, first.scale_t, second.dt, second.scale_t),
    }.items():
        overlap = (torch.minimum(c1 + e1, c2 + e2) - torch.maximum(c1 - e1, c2 - e2))
        iou_num = iou_num * overlap.clamp_min(0)
        vol1, vol2 = vol1 * 2 * e1, vol2 * 2 * e2
        parts[f"distance_{axis}"] = (c1 - c2).abs() / 2
    iou = iou_num / (vol1 + vol2 - iou_num)
    distance = parts["distance_x"] + parts["distance_y"] + parts["distance_t"]
    return {"iou": iou, "distance": distance, **parts}
