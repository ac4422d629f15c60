"""CtP pieces against naive references: RoIAlign, targets and loss, head, trajectories."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vsslzoo.training.ctp.head import CtPHead
from vsslzoo.training.ctp.roi_align import roi_align
from vsslzoo.training.ctp.targets import DEFAULT_STDS, box_iou, ctp_loss, decode, encode
from vsslzoo.training.ctp.trajectories import TrajectoryConfig, sample_trajectories


# ------------------------------------------------------------------------------------
# RoIAlign
# ------------------------------------------------------------------------------------
def _bilinear(feature, y, x):
    height, width = len(feature), len(feature[0])
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_high = y_low = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_high = x_low = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    return (hy * hx * feature[y_low][x_low] + hy * lx * feature[y_low][x_high]
            + ly * hx * feature[y_high][x_low] + ly * lx * feature[y_high][x_high])


def _naive_roi_align(features, boxes, out, scale, ratio, aligned):
    result = np.zeros((len(boxes), features.shape[1], out, out))
    for k, (b, x1, y1, x2, y2) in enumerate(boxes.tolist()):
        offset = 0.5 if aligned else 0.0
        sx, sy = x1 * scale - offset, y1 * scale - offset
        w, h = x2 * scale - offset - sx, y2 * scale - offset - sy
        if not aligned:
            w, h = max(w, 1.0), max(h, 1.0)
        bin_w, bin_h = w / out, h / out
        for c in range(features.shape[1]):
            fmap = features[int(b), c].tolist()
            for ph in range(out):
                for pw in range(out):
                    total = 0.0
                    for iy in range(ratio):
                        y = sy + ph * bin_h + (iy + 0.5) * bin_h / ratio
                        for ix in range(ratio):
                            x = sx + pw * bin_w + (ix + 0.5) * bin_w / ratio
                            total += _bilinear(fmap, y, x)
                    result[k, c, ph, pw] = total / (ratio * ratio)
    return result


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("scale,ratio", [(1 / 8, 2), (0.5, 1), (1.0, 3)])
def test_roi_align_matches_naive_reference(aligned, scale, ratio):
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2, 3, 7, 9, generator=generator, dtype=torch.float64)
    size = 9 / scale
    boxes = torch.tensor([
        [0, 0.0, 0.0, size, 7 / scale],            # the whole map
        [1, 3.3, 2.1, 20.7, 30.2],                 # inside
        [0, -10.0, -5.0, 12.0, 9.0],               # partly outside (top-left)
        [1, size - 4, 7 / scale - 3, size + 30, 7 / scale + 25],  # partly outside
        [0, 5.0, 5.0, 5.5, 5.2],                   # tiny
    ], dtype=torch.float64)
    got = roi_align(features, boxes, (5, 5), scale, ratio, aligned)
    want = _naive_roi_align(features.numpy(), boxes.numpy(), 5, scale, ratio, aligned)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


def test_roi_align_gradients_and_validation():
    features = torch.randn(1, 2, 6, 6, requires_grad=True)
    boxes = torch.tensor([[0, 4.0, 4.0, 30.0, 36.0]])
    roi_align(features, boxes).sum().backward()
    assert features.grad is not None and features.grad.abs().sum() > 0
    assert roi_align(features, torch.zeros(0, 5)).shape == (0, 2, 5, 5)
    with pytest.raises(ValueError, match="sampling_ratio"):
        roi_align(features, boxes, sampling_ratio=0)


# ------------------------------------------------------------------------------------
# targets, loss, IoU
# ------------------------------------------------------------------------------------
def test_targets_and_loss_by_hand():
    boxes = torch.tensor([[[[50.0, 40.0, 20.0, 10.0], [52.4, 38.0, 22.0, 10.0]]]])  # 1,1,2,4
    targets = encode(boxes)
    expected = torch.tensor([[0, 0, 0, 0], [2.4 / 0.8, -2.0 / 0.8, math.log(1.1) / 0.04, 0]])
    torch.testing.assert_close(targets[0, 0], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(decode(boxes[..., 0, :], targets), boxes)
    loss = ctp_loss(torch.zeros_like(targets), targets)
    smooth = [abs(v) - 0.5 if abs(v) >= 1 else 0.5 * v * v for v in expected[1].tolist()]
    assert loss.centre.item() == pytest.approx((smooth[0] + smooth[1]) / 2)  # 1 traj x 2 frames
    assert loss.size.item() == pytest.approx((smooth[2] + smooth[3]) / 2)
    assert loss.total.item() == pytest.approx(sum(smooth) / 2)
    # the paper's form: L((x - x_hat) / s_x) with x_hat decoded from predicted targets
    predicted = targets + 0.3
    decoded = decode(boxes[..., 0, :], predicted)
    paper = (boxes[..., 0] - decoded[..., 0]) / DEFAULT_STDS[0]
    torch.testing.assert_close(paper, -(predicted - targets)[..., 0], rtol=1e-4, atol=1e-4)


def test_iou():
    a = torch.tensor([[10.0, 10.0, 4.0, 4.0]])
    assert box_iou(a, a).item() == pytest.approx(1.0)
    assert box_iou(a, torch.tensor([[30.0, 30.0, 4.0, 4.0]])).item() == 0
    assert box_iou(a, torch.tensor([[12.0, 10.0, 4.0, 4.0]])).item() == pytest.approx(8 / 24)


# ------------------------------------------------------------------------------------
# head
# ------------------------------------------------------------------------------------
def test_head_shapes_init_and_gradients():
    head = CtPHead(in_channels=16, temporal_size=2, num_frames=16, hidden=32)
    features = torch.randn(2, 16, 2, 14, 14, requires_grad=True)
    query = torch.tensor([[[56.0, 56.0, 32.0, 24.0]] * 3] * 2)
    out = head(features, query)
    assert out.shape == (2, 3, 16, 4)
    assert head.fc1.weight.std().item() == pytest.approx(0.001, rel=0.1)
    out.sum().backward()
    assert features.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="time steps"):
        head(torch.randn(1, 16, 4, 14, 14), query[:1])


# ------------------------------------------------------------------------------------
# trajectories (property tests)
# ------------------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), frames=st.integers(2, 32),
       height=st.integers(64, 160), width=st.integers(64, 200))
def test_trajectory_constraints_hold(seed, frames, height, width):
    config = TrajectoryConfig()
    result = sample_trajectories(frames, height, width, np.random.default_rng(seed), config)
    boxes = result.boxes
    assert boxes.shape == (3, frames, 4) and np.isfinite(boxes).all()
    eps = 1e-6
    assert (boxes[..., 2:] > 0).all()
    assert (boxes[..., 0] - boxes[..., 2] / 2 >= -eps).all()
    assert (boxes[..., 0] + boxes[..., 2] / 2 <= width + eps).all()
    assert (boxes[..., 1] - boxes[..., 3] / 2 >= -eps).all()
    assert (boxes[..., 1] + boxes[..., 3] / 2 <= height + eps).all()
    areas = boxes[:, 0, 2] * boxes[:, 0, 3]
    assert (np.diff(areas) <= eps).all()  # largest first
    # §5.1, frame to frame: at most max_speed px of motion per axis, and a size ratio
    # within [e^-0.025, e^0.025], between any two successive frames (eased segments too)
    steps = np.abs(np.diff(boxes[..., :2], axis=1))
    assert (steps <= config.max_speed + eps).all(), steps.max()
    size_steps = np.abs(np.diff(np.log(boxes[..., 2:]), axis=1))
    assert (size_steps <= config.max_scale_change + eps).all(), size_steps.max()
    for trajectory, keys in zip(boxes, result.keyframes):
        # Appendix G: 3 to 5 key frames (fewer only when the clip has fewer frames)
        assert keys[0] == 0 and keys[-1] == frames - 1
        assert min(3, frames) <= len(keys) <= 5
        assert keys == sorted(set(keys))
        for a, b in zip(keys, keys[1:]):
            delta = b - a
            move = np.abs(trajectory[b, :2] - trajectory[a, :2])
            assert (move <= config.max_speed * delta + eps).all()
            ratio = np.log(trajectory[b, 2:] / trajectory[a, 2:])
            assert (np.abs(ratio) <= config.max_scale_change * delta + eps).all()
            segment = trajectory[a:b + 1, :2]
            low = np.minimum(trajectory[a, :2], trajectory[b, :2]) - eps
            high = np.maximum(trajectory[a, :2], trajectory[b, :2]) + eps
            assert ((segment >= low) & (segment <= high)).all()  # no overshoot


def test_eased_trajectories_keep_the_per_frame_limits_at_their_fastest():
    """The accelerating / decelerating segments make their largest step at one end; a
    segment drawn at the limit must still stay within 3 px and e^0.025 per frame there."""
    config = TrajectoryConfig(num_trajectories=1, interpolation_probs=(0.0, 0.5, 0.5))
    rng = np.random.default_rng(1)
    fastest, widest = 0.0, 0.0
    for _ in range(3000):
        boxes = sample_trajectories(16, 112, 112, rng, config).boxes[0]
        fastest = max(fastest, np.abs(np.diff(boxes[:, :2], axis=0)).max())
        widest = max(widest, np.abs(np.diff(np.log(boxes[:, 2:]), axis=0)).max())
    assert 2.5 < fastest <= config.max_speed + 1e-9  # the limit is reached, not exceeded
    assert 0.02 < widest <= config.max_scale_change + 1e-9


def test_trajectory_statistics_follow_the_config():
    from vsslzoo.training.ctp.trajectories import REFERENCE_CODE_KEYFRAMES

    rng = np.random.default_rng(0)
    sizes = []
    for probs, expected in (((0.0, 1 / 3, 1 / 3, 1 / 3), {3: 1 / 3, 4: 1 / 3, 5: 1 / 3}),
                            (REFERENCE_CODE_KEYFRAMES, {2: 0.5, 3: 0.3, 4: 0.2})):
        config = TrajectoryConfig(num_trajectories=1, inner_keyframe_probs=probs)
        counts = dict.fromkeys(range(2, 6), 0)
        for _ in range(600):
            result = sample_trajectories(16, 112, 112, rng, config)
            counts[len(result.keyframes[0])] += 1
            sizes.append(np.sqrt(result.boxes[0, 0, 2] * result.boxes[0, 0, 3]))
        for count, share in expected.items():
            assert abs(counts[count] / 600 - share) < 0.07, (probs, counts)
        assert sum(counts.values()) == sum(counts[c] for c in expected)
    assert TrajectoryConfig().inner_keyframe_probs == (0.0, 1 / 3, 1 / 3, 1 / 3)  # the paper
    assert 12 < min(sizes) and max(sizes) < 64 * math.exp(0.18) + 1e-6
    with pytest.raises(ValueError, match="probabilities"):
        TrajectoryConfig(inner_keyframe_probs=(0.5, 0.5, 0.5))


# ------------------------------------------------------------------------------------
# patch pasting
# ------------------------------------------------------------------------------------
def test_paste_follows_the_trajectory_and_masks_frames():
    from vsslzoo.training.ctp.paste import PasteConfig, paste_patches, patch_mask

    frames, height, width = 16, 64, 96
    clip = torch.from_numpy(np.random.default_rng(5).uniform(0, 255, (3, frames, height, width))
                            ).float()  # noise: a pasted patch changes every pixel it covers
    boxes = np.zeros((1, frames, 4))
    boxes[0, :, 0] = 20 + np.arange(frames) * 3.0  # moves right 3 px per frame
    boxes[0, :, 1] = 32
    boxes[0, :, 2:] = 16
    rng = np.random.default_rng(0)
    config = PasteConfig(paste_prob=0.8, alpha_range=(1.0, 1.0), soft_prob=0.0)
    visible_total = 0
    for _ in range(20):
        out, visible = paste_patches(clip, boxes, np.random.default_rng(rng.integers(1e9)),
                                     config)
        assert visible[0, 0]  # frame 0 always
        visible_total += visible[0, 1:].sum()
        unchanged_visible = 0
        for t in range(frames):
            changed = (out[:, t] != clip[:, t]).any(0).numpy()
            if not visible[0, t]:
                assert not changed.any()
            elif not changed.any():
                unchanged_visible += 1  # the source frame: its own patch, same place
            else:
                ys, xs = np.nonzero(changed)
                assert abs(xs.mean() + 0.5 - boxes[0, t, 0]) <= 1.0
                assert abs(ys.mean() + 0.5 - boxes[0, t, 1]) <= 1.0
                assert xs.max() - xs.min() < 17 and ys.max() - ys.min() < 17
        assert unchanged_visible <= 1
    assert 0.7 < visible_total / (20 * (frames - 1)) < 0.9
    assert patch_mask("rhombus", 9, 9).sum() < patch_mask("ellipse", 9, 9).sum() < 81
