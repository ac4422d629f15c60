"""Batched clip augmentations against naive per-pixel references (training/data/augment.py)."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch

from vsslzoo.training.data import augment


def _clips(batch=2, frames=2, size=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, frames, size, size, generator=generator) * 255


def test_flip_and_grayscale_act_per_clip():
    x = _clips()
    out = augment.hflip(x, torch.tensor([True, False]))
    assert torch.equal(out[0], x[0].flip(-1)) and torch.equal(out[1], x[1])
    out = augment.grayscale(x, torch.tensor([False, True]))
    assert torch.equal(out[0], x[0])
    r, g, b = x[1].numpy()
    grey = 0.299 * r + 0.587 * g + 0.114 * b
    for c in range(3):
        np.testing.assert_allclose(out[1, c].numpy(), grey, rtol=1e-5)


def test_brightness_contrast_saturation_match_the_formulas():
    x = _clips()
    factor = torch.tensor([0.6, 1.3])
    bright = augment.adjust_brightness(x, factor)
    contrast = augment.adjust_contrast(x, factor)
    saturation = augment.adjust_saturation(x, factor)
    for n in range(2):
        f = float(factor[n])
        pixels = x[n].numpy().astype(np.float64)
        grey = 0.299 * pixels[0] + 0.587 * pixels[1] + 0.114 * pixels[2]
        mean = grey.mean()  # over the whole clip
        for c in range(3):
            np.testing.assert_allclose(bright[n, c], np.clip(pixels[c] * f, 0, 255), rtol=1e-5)
            np.testing.assert_allclose(contrast[n, c],
                                       np.clip(f * pixels[c] + (1 - f) * mean, 0, 255),
                                       rtol=1e-5, atol=1e-3)
            np.testing.assert_allclose(saturation[n, c],
                                       np.clip(f * pixels[c] + (1 - f) * grey, 0, 255),
                                       rtol=1e-5, atol=1e-3)


def test_hue_shift_matches_colorsys():
    x = _clips(batch=2, frames=1, size=4)
    shift = torch.tensor([0.2, -0.35])
    out = augment.adjust_hue(x, shift)
    for n in range(2):
        for i in range(4):
            for j in range(4):
                r, g, b = (x[n, :, 0, i, j] / 255).tolist()
                h, s, v = colorsys.rgb_to_hsv(r, g, b)
                expected = colorsys.hsv_to_rgb((h + float(shift[n])) % 1.0, s, v)
                np.testing.assert_allclose(out[n, :, 0, i, j].numpy() / 255, expected,
                                           atol=1e-4)
    identity = augment.adjust_hue(x, torch.zeros(2))
    torch.testing.assert_close(identity, x, atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="hue shift"):
        augment.adjust_hue(x, torch.tensor([0.7, 0.0]))


def test_sampled_jitter_ranges_and_identity_when_not_applied():
    generator = torch.Generator().manual_seed(1)
    params = augment.sample_colour_jitter(4000, strength=(0.4, 0.3, 0.2, 0.1), p=0.8,
                                          generator=generator)
    applied = params.brightness != 1
    assert 0.77 < applied.float().mean() < 0.83
    assert params.brightness.min() >= 0.6 and params.brightness.max() <= 1.4
    assert params.contrast.min() >= 0.7 and params.saturation.max() <= 1.2
    assert params.hue.abs().max() <= 0.1 and (params.hue[~applied] == 0).all()
    x = _clips(batch=4)
    unchanged = augment.sample_colour_jitter(4, p=0.0).apply(x)
    torch.testing.assert_close(unchanged, x, atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="p must"):
        augment.sample_colour_jitter(2, p=1.5)


def test_gaussian_blur_matches_a_naive_loop():
    x = _clips(batch=2, frames=2, size=7)
    sigma = torch.tensor([1.2, 0.0])
    out = augment.gaussian_blur(x, sigma, kernel_size=5)
    torch.testing.assert_close(out[1], x[1])  # sigma 0: unchanged
    offsets = np.arange(-2, 3)
    kernel = np.exp(-0.5 * (offsets / 1.2) ** 2)
    kernel /= kernel.sum()
    for c in range(3):
        for t in range(2):
            plane = np.pad(x[0, c, t].numpy().astype(np.float64), 2, mode="reflect")
            expected = np.zeros((7, 7))
            for i in range(7):
                for j in range(7):
                    for a in range(5):
                        for b in range(5):
                            expected[i, j] += kernel[a] * kernel[b] * plane[i + a, j + b]
            np.testing.assert_allclose(out[0, c, t].numpy(), expected, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="odd"):
        augment.gaussian_blur(x, sigma, kernel_size=4)
