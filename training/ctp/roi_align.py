"""RoIAlign (He et al., Mask R-CNN), as CtP's head uses it: 5x5 output (CtP §5.1), spatial
scale 1/8, sampling ratio 2, ``aligned=True`` (microsoft/CtP
``pyvrl/models/pretraining/ctp/ctp_head.py``, with the head settings of
``configs/ctp/r3d_18_ucf101/pretraining.py``).

torchvision cannot be installed beside this project's PyTorch build, so this is a
vectorised implementation of torchvision's ``roi_align`` semantics (the same sample
points, boundary rules and bilinear weights), tested against a naive loop
reference. It is differentiable with respect to the features.
"""

from __future__ import annotations

import torch


def roi_align(
    features: torch.Tensor,
    boxes: torch.Tensor,
    output_size: tuple[int, int] = (5, 5),
    spatial_scale: float = 1.0 / 8,
    sampling_ratio: int = 2,
    aligned: bool = True,
) -> torch.Tensor:
    """Pool each box of ``boxes`` from ``features``.

    Args:
        features: ``(N, C, H, W)`` feature maps.
        boxes: ``(K, 5)``: ``(batch index, x1, y1, x2, y2)`` in input-image pixels.
        output_size: ``(PH, PW)`` bins per box.
        spatial_scale: feature-map size / image size.
        sampling_ratio: sample points per bin side (> 0; torchvision's adaptive 0 is not
            offered: CtP uses 2).
        aligned: shift by -0.5 pixel so box corners map to pixel corners.

    Returns:
        ``(K, C, PH, PW)``.
    """
    if features.dim() != 4 or boxes.dim() != 2 or boxes.shape[1] != 5:
        raise ValueError(f"expected features (N, C, H, W) and boxes (K, 5); got "
                         f"{tuple(features.shape)} and {tuple(boxes.shape)}")
    num_boxes = boxes.shape[0]
    channels, height, width = features.shape[1:]
    out_h, out_w = output_size
    if num_boxes == 0:
        return features.new_zeros((0, channels, out_h, out_w))
    boxes = boxes.to(features.dtype)
    offset = 0.5 if aligned else 0.0
    start_x = boxes[:, 1] * spatial_scale - offset
    start_y = boxes[:, 2] * spatial_scale - offset
    roi_w = boxes[:, 3] * spatial_scale - offset - start_x
    roi_h = boxes[:, 4] * spatial_scale - offset - start_y
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    if sampling_ratio < 1:
        raise ValueError(f"sampling_ratio must be >= 1, got {sampling_ratio}")
    grid = (sampling_ratio, sampling_ratio)
    # sample coordinates (K, out_h * grid_h) and (K, out_w * grid_w)
    iy = torch.arange(out_h * grid[0], device=features.device, dtype=features.dtype)
    ix = torch.arange(out_w * grid[1], device=features.device, dtype=features.dtype)
    ys = start_y[:, None] + (iy[None, :] + 0.5) * (roi_h / (out_h * grid[0]))[:, None]
    xs = start_x[:, None] + (ix[None, :] + 0.5) * (roi_w / (out_w * grid[1]))[:, None]
    y_low, y_high, ly, y_valid = _axis(ys, height)
    x_low, x_high, lx, x_valid = _axis(xs, width)
    flat = features.flatten(2)  # (N, C, H*W)
    batch = boxes[:, 0].long()
    per_box = flat[batch]  # (K, C, H*W)

    def gather(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        index = (rows[:, :, None] * width + cols[:, None, :]).flatten(1)  # (K, Sy*Sx)
        values = per_box.gather(2, index[:, None, :].expand(-1, channels, -1))
        return values.view(num_boxes, channels, rows.shape[1], cols.shape[1])

    hy, hx = 1 - ly, 1 - lx
    value = (gather(y_low, x_low) * (hy[:, :, None] * hx[:, None, :])[:, None]
             + gather(y_low, x_high) * (hy[:, :, None] * lx[:, None, :])[:, None]
             + gather(y_high, x_low) * (ly[:, :, None] * hx[:, None, :])[:, None]
             + gather(y_high, x_high) * (ly[:, :, None] * lx[:, None, :])[:, None])
    valid = (y_valid[:, :, None] & x_valid[:, None, :])[:, None].to(value.dtype)
    value = value * valid
    value = value.view(num_boxes, channels, out_h, grid[0], out_w, grid[1])
    return value.mean(dim=(3, 5))


def _axis(coords: torch.Tensor, size: int):
    """torchvision's bilinear rules along one axis: (low, high, fraction, in-range)."""
    valid = (coords >= -1.0) & (coords <= size)
    coords = coords.clamp(min=0.0)
    low = coords.floor().long()
    at_edge = low >= size - 1
    low = torch.where(at_edge, torch.full_like(low, size - 1), low)
    high = torch.where(at_edge, low, low + 1)
    coords = torch.where(at_edge, low.to(coords.dtype), coords)
    fraction = coords - low.to(coords.dtype)
    return low, high, fraction, valid
