"""Controllable low-level augmentations tau_l with intensity levels (§3.2, §4.4, Table 5).

Colour jitter (brightness, contrast, saturation, hue around the usual strengths
(0.4, 0.4, 0.4, 0.1)) and Gaussian blur each have their range cut into equal
sub-ranges, the *levels*; a view's intensity level is one sub-range per parameter, so
there are ``prod(levels)`` levels in all (Table 5's best row, 4/4/4 for B/C/S, 2 for H,
4 for blur: 512). Every iteration draws 32 of them (§4.4: "we randomly sample 32
intensity levels from all possible levels"), every view is given one of these 32, and
its parameters are drawn uniformly inside that level's sub-ranges.

Choices (the paper gives no numbers beyond the above):

* ranges: factors ``[1 - s, 1 + s]`` (torchvision's ColorJitter), hue ``[-h, h]`` turns,
  blur sigma ``[0.1, 2.0]`` pixels (SimCLR's) at a fixed odd kernel of about a tenth of the
  crop (SimCLR's); the paper "controls the radius and sigma", here only sigma varies;
* every view is jittered and blurred (no apply-probability: a level must mean the
  same thing for all views that share it);
* the 32 levels of an iteration are the same on every process (drawn from a generator
  seeded by the iteration), so same-level pairs can be formed across processes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.augment import colour_jitter, gaussian_blur


@dataclass(frozen=True)
class LowLevelConfig:
    strength: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)  # B, C, S, H
    levels: tuple[int, int, int, int, int] = (4, 4, 4, 2, 4)  # B, C, S, H, blur (Table 5)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel: int = 0  # 0: the odd number nearest a tenth of the crop (at least 3)
    sampled_levels: int = 32  # levels drawn per iteration (§4.4)

    def __post_init__(self) -> None:
        if len(self.levels) != 5 or min(self.levels) < 1:
            raise ValueError(f"levels must be 5 positive counts (B, C, S, H, blur), "
                             f"got {self.levels}")
        b, c, s, h = self.strength
        if min(b, c, s) < 0 or min(b, c, s) > 1 or not 0 <= h <= 0.5:
            raise ValueError(f"strength must be (B, C, S) in [0, 1] and H in [0, 0.5], "
                             f"got {self.strength}")
        if not 0 <= self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(f"blur_sigma must be 0 <= low <= high, got {self.blur_sigma}")
        if not 1 <= self.sampled_levels <= self.total_levels:
            raise ValueError(f"sampled_levels must be in [1, {self.total_levels}] (the number "
                             f"of levels), got {self.sampled_levels}")

    @property
    def total_levels(self) -> int:
        total = 1
        for count in self.levels:
            total *= count
        return total

    def ranges(self) -> list[tuple[float, float]]:
        """(low, high) of brightness, contrast, saturation, hue, blur sigma."""
        b, c, s, h = self.strength
        return [(1 - b, 1 + b), (1 - c, 1 + c), (1 - s, 1 + s), (-h, h), self.blur_sigma]

    def kernel_size(self, crop: int) -> int:
        if self.blur_kernel:
            return self.blur_kernel
        return max(3, int(round(crop / 10)) // 2 * 2 + 1)


def level_digits(level: torch.Tensor, config: LowLevelConfig) -> torch.Tensor:
    """Level ids (N,) -> (N, 5) sub-range index of each parameter (mixed radix, the blur
    digit fastest)."""
    digits = []
    rest = level.long()
    for count in reversed(config.levels):
        digits.append(rest % count)
        rest = rest // count
    return torch.stack(digits[::-1], dim=1)


def sample_levels(views: int, config: LowLevelConfig, iteration_generator: torch.Generator,
                  generator: torch.Generator | None = None,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """Draw ``config.sampled_levels`` distinct levels (with ``iteration_generator``, the
    same on every process) and give each of ``views`` views one of them -> (views,) ids."""
    chosen = torch.randperm(config.total_levels, generator=iteration_generator)
    chosen = chosen[:config.sampled_levels].to(device)
    pick = torch.randint(0, config.sampled_levels, (views,), generator=generator,
                         device=device)
    return chosen[pick]


def level_parameters(level: torch.Tensor, config: LowLevelConfig,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """(N,) level ids -> (N, 5) parameters (brightness, contrast, saturation, hue,
    blur sigma), each uniform inside its level's sub-range."""
    digits = level_digits(level, config).double()
    counts = torch.tensor(config.levels, dtype=torch.float64, device=level.device)
    bounds = torch.tensor(config.ranges(), dtype=torch.float64, device=level.device)
    width = (bounds[:, 1] - bounds[:, 0]) / counts
    u = torch.rand(digits.shape, generator=generator, device=level.device, dtype=torch.float64)
    return (bounds[:, 0] + (digits + u) * width).float()


def apply_low_level(x: torch.Tensor, params: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """tau_l on views ``x`` (N, 3, T, H, W) float 0..255 with ``params`` (N, 5):
    colour jitter then Gaussian blur."""
    x = colour_jitter(x, params[:, 0], params[:, 1], params[:, 2], params[:, 3])
    return gaussian_blur(x, params[:, 4], kernel_size)
