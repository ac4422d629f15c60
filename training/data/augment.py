"""Batched clip augmentations on any device: flip, colour jitter, grayscale, Gaussian blur.

Every function takes pixels ``x`` of shape ``(B, 3, T, H, W)``, float on the 0..255 scale
(RGB), and one set of parameters per clip (tensors of shape ``(B,)``), applied identically
to every frame of that clip, as the papers ask ("identical across the frames of a clip",
CORP §3.2; CVRL's temporally consistent augmentation). The results are clamped to 0..255.

Semantics follow torchvision's ``ColorJitter`` / ``RandomGrayscale`` / ``GaussianBlur``
(the implementations SimCLR-style video papers use), with two choices written down here:

* the jitter order is fixed (brightness, contrast, saturation, hue) where torchvision
  draws a random order per call;
* contrast blends towards the mean grey level of the *whole clip* (torchvision: of each
  frame), so a static clip and its frames stay consistent.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# ITU-R 601-2 luma, as torchvision's rgb_to_grayscale
_LUMA = (0.299, 0.587, 0.114)


def _per_clip(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, 1, 1, 1) on x's device and dtype."""
    if values.shape != (x.shape[0],):
        raise ValueError(f"expected one value per clip, shape ({x.shape[0]},), "
                         f"got {tuple(values.shape)}")
    return values.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1, 1)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, T, H, W) -> (B, 1, T, H, W) luma."""
    r, g, b = x.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def hflip(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror the clips where ``flip`` (bool, (B,)) is true."""
    return torch.where(_per_clip(flip, x).bool(), x.flip(-1), x)


def grayscale(x: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """Replace the clips where ``apply`` (bool, (B,)) is true by their luma in all three
    channels."""
    return torch.where(_per_clip(apply, x).bool(), _grey(x).expand_as(x), x)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (x * _per_clip(factor, x)).clamp(0, 255)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = _grey(x).mean(dim=(2, 3, 4), keepdim=True)
    f = _per_clip(factor, x)
    return (f * x + (1 - f) * mean).clamp(0, 255)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = _per_clip(factor, x)
    return (f * x + (1 - f) * _grey(x)).clamp(0, 255)


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, ...) in 0..1 -> hue, saturation, value in 0..1 (torchvision's formulas)."""
    r, g, b = x.unbind(1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    equal = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    saturation = cr / torch.where(equal, ones, maxc)
    cr_divisor = torch.where(equal, ones, cr)
    rc, gc, bc = (maxc - r) / cr_divisor, (maxc - g) / cr_divisor, (maxc - b) / cr_divisor
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    hue = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack((hue, saturation, maxc), dim=1)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0)
    choices = [
        torch.stack(c, dim=1) for c in
        ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))
    ]
    out = choices[0]
    for k in range(1, 6):
        out = torch.where((i == k).unsqueeze(1), choices[k], out)
    return out


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by ``shift`` turns (in [-0.5, 0.5]) in HSV space."""
    if bool((shift.abs() > 0.5).any()):
        raise ValueError("hue shift must lie in [-0.5, 0.5] (fractions of a turn)")
    dtype = x.dtype
    hsv = _rgb_to_hsv((x.float() / 255).clamp(0, 1))
    hue = torch.remainder(hsv[:, 0] + _per_clip(shift, x).float().squeeze(1), 1.0)
    rgb = _hsv_to_rgb(torch.stack((hue, hsv[:, 1], hsv[:, 2]), dim=1))
    return (rgb * 255).to(dtype)


def colour_jitter(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor,
                  saturation: torch.Tensor, hue: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast, saturation (multiplicative factors, 1 = identity) then hue
    (shift in turns, 0 = identity), each ``(B,)``."""
    x = adjust_brightness(x, brightness)
    x = adjust_contrast(x, contrast)
    x = adjust_saturation(x, saturation)
    return adjust_hue(x, hue)


@dataclass
class JitterParams:
    """One colour-jitter draw per clip, each field ``(B,)``."""

    brightness: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor
    hue: torch.Tensor

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return colour_jitter(x, self.brightness, self.contrast, self.saturation, self.hue)


def sample_colour_jitter(batch: int, strength: tuple[float, float, float, float] = (
        0.4, 0.4, 0.4, 0.1), p: float = 0.8, generator: torch.Generator | None = None,
        device: torch.device | str | None = None) -> JitterParams:
    """torchvision ``RandomApply([ColorJitter(*strength)], p)``: factors uniform in
    ``[max(0, 1 - s), 1 + s]``, hue uniform in ``[-h, h]``; clips drawn not to be
    jittered (probability ``1 - p``) get the identity."""
    b, c, s, h = strength
    if min(strength) < 0 or h > 0.5:
        raise ValueError(f"strength must be >= 0 with hue <= 0.5, got {strength}")
    if not 0 <= p <= 1:
        raise ValueError(f"p must lie in [0, 1], got {p}")

    def uniform(low: float, high: float) -> torch.Tensor:
        u = torch.rand(batch, generator=generator, device=device)
        return low + (high - low) * u

    applied = torch.rand(batch, generator=generator, device=device) < p
    one = torch.ones(batch, device=device)
    return JitterParams(
        brightness=torch.where(applied, uniform(max(0.0, 1 - b), 1 + b), one),
        contrast=torch.where(applied, uniform(max(0.0, 1 - c), 1 + c), one),
        saturation=torch.where(applied, uniform(max(0.0, 1 - s), 1 + s), one),
        hue=torch.where(applied, uniform(-h, h), one * 0),
    )


def gaussian_kernels(sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """(B,) sigmas -> (B, kernel_size) normalised 1-D Gaussians; sigma <= 0 gives a delta."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
    half = kernel_size // 2
    offsets = torch.arange(-half, half + 1, device=sigma.device, dtype=torch.float32)
    safe = sigma.float().clamp_min(1e-6).unsqueeze(1)
    kernels = torch.exp(-0.5 * (offsets / safe) ** 2)
    kernels = kernels / kernels.sum(dim=1, keepdim=True)
    delta = (offsets == 0).float().expand_as(kernels)
    return torch.where((sigma > 0).unsqueeze(1), kernels, delta)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Blur every frame with a separable 2-D Gaussian of std ``sigma`` (pixels, per clip,
    ``(B,)``) and width ``kernel_size`` (odd), reflect padding (torchvision's)."""
    batch, channels, frames, height, width = x.shape
    half = kernel_size // 2
    if half >= min(height, width):
        raise ValueError(f"kernel_size {kernel_size} is too large for {height}x{width} frames")
    kernels = gaussian_kernels(sigma.to(x.device), kernel_size).to(x.dtype)  # (B, K)
    per_plane = kernels.repeat_interleave(channels * frames, dim=0)  # (B*C*T, K)
    planes = x.reshape(1, batch * channels * frames, height, width)
    planes = F.pad(planes, (half, half, half, half), mode="reflect")
    groups = planes.shape[1]
    planes = F.conv2d(planes, per_plane.view(groups, 1, 1, kernel_size), groups=groups)
    planes = F.conv2d(planes, per_plane.view(groups, 1, kernel_size, 1), groups=groups)
    return planes.reshape(batch, channels, frames, height, width)
