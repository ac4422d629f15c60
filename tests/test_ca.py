"""Controllable Augmentations: correspondence (Eq. 1), region contrast (Eqs. 3-4), the
MINE / DV bound (Eqs. 5-7), intensity levels, heads, the sampler and a CPU smoke run."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import vsslzoo
from vsslzoo.training.ca.correspondence import correspondence
from vsslzoo.training.ca.data import CADataConfig, VideoTooShortError, ca_sample
from vsslzoo.training.ca.heads import (
    MINE,
    TemporalDependencyHead,
    sample_level_pairs,
    shuffled_orders,
)
from vsslzoo.training.ca.losses import donsker_varadhan, region_contrast_loss
from vsslzoo.training.ca.lowlevel import LowLevelConfig, level_parameters, sample_levels
from vsslzoo.training.ca.model import CAModelConfig, temporal_stride_one
from vsslzoo.training.ca.train import benchmark_setup
from vsslzoo.training.data.datasets import ClipDataset, collate_skipping_broken, discover
from vsslzoo.training.data.synthetic import generate
from vsslzoo.training.layers import reverse_gradient


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread is several times faster than two on a busy 2-core box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TINY = dict(width=0.125, num_frames=8, crop=32, grid=2, global_temporal_res=4,
            proj_hidden=32, proj_dim=16, mine_hidden=32)


# -- Eq. 1 ---------------------------------------------------------------------------------
def _naive_correspondence(clip_box, clip_span, clip_flip, g_box, g_span, g_flip,
                          clip_grid, global_grid):
    """Loop over every pair of tubes; a flipped view's column w covers, from the right,
    the w-th slice of its box."""

    def tubes(box, span, flip, grid):
        t_n, h_n, w_n = grid
        out = []
        for t, h, w in itertools.product(range(t_n), range(h_n), range(w_n)):
            dt, dy, dx = ((span[1] - span[0]) / t_n, (box[3] - box[1]) / h_n,
                          (box[2] - box[0]) / w_n)
            x_lo = box[2] - (w + 1) * dx if flip else box[0] + w * dx
            out.append(((span[0] + t * dt, span[0] + (t + 1) * dt),
                        (box[1] + h * dy, box[1] + (h + 1) * dy), (x_lo, x_lo + dx)))
        return out

    def inter(a, b):
        return math.prod(max(0.0, min(a[d][1], b[d][1]) - max(a[d][0], b[d][0]))
                         for d in range(3))

    clip_tubes = tubes(clip_box, clip_span, clip_flip, clip_grid)
    global_tubes = tubes(g_box, g_span, g_flip, global_grid)
    return np.array([[inter(c, g) / math.prod(e[1] - e[0] for e in c) for g in global_tubes]
                     for c in clip_tubes])


def _random_views(rng, batch, clips):
    """Clip boxes inside the global box, clip spans inside [0, 10] s, random flips."""
    g_box, c_box, c_span = [], [], []
    for _ in range(batch):
        x0, y0 = rng.uniform(0, 0.4, 2)
        x1, y1 = rng.uniform(0.6, 1.0, 2)
        g_box.append((x0, y0, x1, y1))
        boxes, spans = [], []
        for _ in range(clips):
            a, b = np.sort(rng.uniform(x0, x1, 2))
            c, d = np.sort(rng.uniform(y0, y1, 2))
            boxes.append((a, c, b + 1e-3 if b == a else b, d + 1e-3 if d == c else d))
            start = rng.uniform(0, 8)
            spans.append((start, start + rng.uniform(0.5, 2.0)))
        c_box.append(boxes)
        c_span.append(spans)
    return (torch.tensor(c_box), torch.tensor(c_span),
            torch.from_numpy(rng.random((batch, clips)) < 0.5),
            torch.tensor(g_box), torch.tensor([[0.0, 10.0]] * batch),
            torch.from_numpy(rng.random(batch) < 0.5))


def test_correspondence_rows_sum_to_one_and_match_a_naive_loop():
    rng = np.random.default_rng(0)
    views = _random_views(rng, batch=2, clips=3)
    s = correspondence(*views, (2, 3, 3), (4, 4, 4))
    assert s.shape == (2, 3, 18, 64)
    torch.testing.assert_close(s.sum(-1), torch.ones(2, 3, 18))
    c_box, c_span, c_flip, g_box, g_span, g_flip = views
    for b, k in itertools.product(range(2), range(3)):
        expected = _naive_correspondence(
            c_box[b, k].double().tolist(), c_span[b, k].double().tolist(), bool(c_flip[b, k]),
            g_box[b].double().tolist(), g_span[b].double().tolist(), bool(g_flip[b]),
            (2, 3, 3), (4, 4, 4))
        np.testing.assert_allclose(s[b, k].numpy(), expected, atol=2e-6)


def test_pooled_cells_cover_what_the_correspondence_says():
    """Eq. 1's targets split a view into equal, disjoint cells (``cell_edges``); the
    features pooled to the grid must stand for exactly those cells. A 7-wide map pooled to
    4 cells by ``adaptive_avg_pool3d`` mixes overlapping windows [0,2), [1,4), [3,6),
    [5,7); pooled by area, cell i is the mean over [7i/4, 7(i+1)/4). Reference: split
    every feature cell into 4 equal sub-cells, then cell i is the mean of 7 of them."""
    from vsslzoo.training.ca.correspondence import cell_edges, pool_to_cells

    values = torch.tensor([0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5], dtype=torch.float64) ** 2
    fine = values.repeat_interleave(4)  # 28 sub-cells of width 1/4
    edges = cell_edges(torch.tensor(0.0), torch.tensor(7.0), 4)  # the targets' cells
    expected = torch.stack([fine[round(4 * a):round(4 * b)].mean() for a, b in edges.tolist()])
    maps = torch.zeros(1, 3, 2, 7, 7, dtype=torch.float64)
    maps[0, 0] = values[None, None, :]  # varies along x
    maps[0, 1] = values[None, :, None]  # along y
    maps[0, 2] = 1.0
    pooled = pool_to_cells(maps, (2, 4, 4))
    assert pooled.shape == (1, 3, 2, 4, 4)
    torch.testing.assert_close(pooled[0, 0, 0, 0], expected)
    torch.testing.assert_close(pooled[0, 1, 0, :, 0], expected)
    torch.testing.assert_close(pooled[0, 2], torch.ones(2, 4, 4, dtype=torch.float64))
    even = torch.randn(2, 3, 4, 8, 6)  # whole multiples: plain average pooling
    torch.testing.assert_close(pool_to_cells(even, (2, 4, 3)), F.avg_pool3d(even, 2))

    # the model's encoders pool this way (R3D-18 at 112^2: 7 x 7 maps, 4 x 4 grid)
    model, _ = benchmark_setup("r3d_18", 2, "cpu", **{**TINY, "crop": 112, "grid": 4})
    assert model.clip_grid[1:] == (4, 4)
    calls = []

    def feature_map(x):  # encode asks for the clips' map, then the global view's
        calls.append(x)
        time_steps = (model.clip_grid, model.global_grid)[len(calls) - 1][0]
        out = torch.zeros(x.shape[0], 2, time_steps, 7, 7)
        out[:, 0] = values.float()[None, None, :]
        out[:, 1] = values.float()[None, :, None]
        return out

    model.backbone.forward_features = feature_map
    clip_cells, global_cells = model.encode(torch.zeros(1, 3, 8, 112, 112),
                                            torch.zeros(1, 3, 8, 112, 112))
    for cells in (clip_cells, global_cells):
        torch.testing.assert_close(cells[0, 0, 0, 0], expected.float())
        torch.testing.assert_close(cells[0, 1, 0, :, 0], expected.float())


def _one(box, span, flip=False):
    return torch.tensor([box]), torch.tensor([span]), torch.tensor([flip])


def test_identical_crops_give_the_block_structure():
    box, span = (0.1, 0.2, 0.9, 0.8), (0.0, 4.0)
    c_box, c_span, c_flip = _one(box, span)
    s = correspondence(c_box[None], c_span[None], c_flip[None], c_box, c_span, c_flip,
                       (2, 2, 2), (4, 2, 2))[0, 0]
    expected = torch.zeros(8, 16)
    for t, h, w in itertools.product(range(2), range(2), range(2)):
        for half in (0, 1):  # each clip time step covers two global time steps
            expected[t * 4 + h * 2 + w, (2 * t + half) * 4 + h * 2 + w] = 0.5
    torch.testing.assert_close(s, expected)


def test_a_horizontal_flip_mirrors_the_correspondence():
    c_box, c_span = torch.tensor([[[0.1, 0.2, 0.7, 0.9]]]), torch.tensor([[[1.0, 3.0]]])
    g_box, g_span = torch.tensor([[0.05, 0.0, 0.95, 1.0]]), torch.tensor([[0.0, 4.0]])
    grid_c, grid_v = (2, 3, 4), (4, 3, 4)
    plain = correspondence(c_box, c_span, torch.zeros(1, 1, dtype=torch.bool), g_box, g_span,
                           torch.zeros(1, dtype=torch.bool), grid_c, grid_v)[0, 0]
    flipped = correspondence(c_box, c_span, torch.ones(1, 1, dtype=torch.bool), g_box, g_span,
                             torch.zeros(1, dtype=torch.bool), grid_c, grid_v)[0, 0]
    # flipping the clip mirrors the clip's columns: rows w <-> W-1-w
    mirrored_rows = plain.view(2, 3, 4, -1).flip(2).reshape(24, -1)
    torch.testing.assert_close(flipped, mirrored_rows)
    both = correspondence(c_box, c_span, torch.ones(1, 1, dtype=torch.bool), g_box, g_span,
                          torch.ones(1, dtype=torch.bool), grid_c, grid_v)[0, 0]
    torch.testing.assert_close(both, mirrored_rows.view(24, 4, 3, 4).flip(3).reshape(24, -1))
    assert not torch.equal(flipped, plain)


def test_disjoint_time_ranges_give_zero_overlap():
    box = (0.0, 0.0, 1.0, 1.0)
    c_box, c_span, c_flip = _one(box, (5.0, 6.0))
    g_box, g_span, g_flip = _one(box, (0.0, 4.0))
    s = correspondence(c_box[None], c_span[None], c_flip[None], g_box, g_span, g_flip,
                       (2, 2, 2), (8, 2, 2))
    assert s.abs().max() == 0
    # a clip in the first half of the global span touches only its first half's cells
    c_span = torch.tensor([[[0.0, 2.0]]])
    s = correspondence(c_box[None], c_span, c_flip[None], g_box, g_span, g_flip,
                       (2, 2, 2), (8, 2, 2))[0, 0].view(8, 8, 4)
    assert s[:, 4:].abs().max() == 0 and s[:, :4].sum() == pytest.approx(8.0)


# -- Eqs. 3-4 -------------------------------------------------------------------------------
def _naive_region_contrast(q, k, s, tau, negatives):
    raw = k.double()
    q, k = F.normalize(q.double(), dim=-1), F.normalize(raw, dim=-1)
    batch, clips, n_c, _ = q.shape
    total, count = 0.0, 0
    for b, c, i in itertools.product(range(batch), range(clips), range(n_c)):
        def sim(x, query=q[b, c, i]):
            return math.exp(float(query @ x) / tau)

        own = [sim(k[b, j]) for j in range(k.shape[1])]
        negs = []
        for other in range(k.shape[0]):
            if other == b or negatives == "none":
                continue
            if negatives == "cells":
                negs += [sim(k[other, j]) for j in range(k.shape[1])]
            else:
                negs.append(sim(F.normalize(raw[other].mean(0), dim=0)))  # pooled, then cos
        denominator = sum(own) + sum(negs)
        total += -sum(float(s[b, c, i, j]) * math.log(own[j] / denominator)
                      for j in range(k.shape[1]))
        count += 1
    return total / count


@pytest.mark.parametrize("negatives", ["cells", "pooled", "none"])
def test_region_contrast_matches_a_naive_loop(negatives):
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(3, 2, 4, 8, generator=gen), torch.randn(3, 6, 8, generator=gen)
    s = torch.rand(3, 2, 4, 6, generator=gen)
    s = s / s.sum(-1, keepdim=True)
    loss = region_contrast_loss(q, k, s, 0.2, negatives)
    assert float(loss) == pytest.approx(_naive_region_contrast(q, k, s, 0.2, negatives),
                                        rel=1e-5)


def test_region_contrast_is_infonce_when_s_is_one_hot():
    gen = torch.Generator().manual_seed(1)
    batch, n_v = 3, 5
    q, k = torch.randn(batch, 1, 4, 8, generator=gen), torch.randn(batch, n_v, 8, generator=gen)
    positives = torch.randint(0, n_v, (batch, 1, 4), generator=gen)
    s = F.one_hot(positives, n_v).float()
    loss = region_contrast_loss(q, k, s, 0.1, "cells")
    # InfoNCE (Eq. 2): cross-entropy over all global cells of all videos
    logits = F.normalize(q, dim=-1).reshape(-1, 8) @ F.normalize(k, dim=-1).reshape(-1, 8).T
    target = (torch.arange(batch)[:, None, None] * n_v + positives).reshape(-1)
    torch.testing.assert_close(loss, F.cross_entropy(logits / 0.1, target))


# -- Eqs. 5-7 -------------------------------------------------------------------------------
def test_donsker_varadhan_matches_the_formula_and_gradients_reverse():
    joint, marginal = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([0.1, -0.3, 2.0, 0.7])
    expected = joint.mean() - math.log(sum(math.exp(float(m)) for m in marginal) / 4)
    assert float(donsker_varadhan(joint, marginal)) == pytest.approx(float(expected))
    x = torch.ones(3, requires_grad=True)
    (reverse_gradient(x, 0.5) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([-0.5, -1.0, -1.5]))


def _fit_mine(dependent: bool, steps: int = 100) -> float:
    torch.manual_seed(0)
    mine = MINE(4, hidden=16)
    optimiser = torch.optim.Adam(mine.parameters(), lr=5e-3)

    def draw(n=128):
        x = torch.randn(n, 4)
        y = x + 0.3 * torch.randn(n, 4) if dependent else torch.randn(n, 4)
        return x, y

    for _ in range(steps):
        x, y = draw()
        bound = donsker_varadhan(mine(x, y), mine(x, y[torch.randperm(len(y))]))
        optimiser.zero_grad()
        (-bound).backward()
        optimiser.step()
    with torch.no_grad():
        x, y = draw(4096)
        return float(donsker_varadhan(mine(x, y), mine(x, y.roll(1, 0))))


def test_mine_bound_is_higher_for_dependent_variables():
    dependent, independent = _fit_mine(True), _fit_mine(False)
    assert dependent > 1.0 and abs(independent) < 0.1 and dependent > independent + 1.0


def test_level_pairs_share_the_level_and_not_the_video():
    levels = torch.tensor([0, 1, 0, 1, 2, 0])
    videos = torch.tensor([0, 0, 1, 1, 2, 0])
    ja, jb, ma, mb = sample_level_pairs(levels, videos, torch.Generator().manual_seed(0))
    assert ja.tolist() == [0, 1, 2, 3, 5]  # view 4 has no same-level partner
    assert (levels[ja] == levels[jb]).all() and (videos[ja] != videos[jb]).all()
    assert ma.tolist() == list(range(6)) and (ma != mb).all()


def test_intensity_levels_follow_table_5():
    config = LowLevelConfig()
    assert config.total_levels == 512
    gen = torch.Generator().manual_seed(0)
    levels = sample_levels(4000, config, torch.Generator().manual_seed(3), gen)
    assert len(levels.unique()) == 32
    params = level_parameters(levels, config, gen).double()
    ranges = [(0.6, 1.4, 4), (0.6, 1.4, 4), (0.6, 1.4, 4), (-0.1, 0.1, 2), (0.1, 2.0, 4)]
    radix = [128, 32, 8, 4, 1]  # naive mixed-radix decoding of a level id
    for column, ((low, high, count), unit) in enumerate(zip(ranges, radix)):
        digit = (levels // unit) % count
        width = (high - low) / count
        value = params[:, column]
        assert ((value >= low + digit * width - 1e-6) &
                (value <= low + (digit + 1) * width + 1e-6)).all()
    with pytest.raises(ValueError, match="sampled_levels"):
        LowLevelConfig(sampled_levels=600)


def _shuffle(features, orders):
    """features (N, K, D), orders (N, S, K) -> (N * S, K, D) reordered clip features."""
    expanded = features[:, None].expand(-1, orders.shape[1], -1, -1)
    index = orders[..., None].expand(-1, -1, -1, features.shape[-1])
    return torch.gather(expanded, 2, index).flatten(0, 1)


@pytest.mark.parametrize(("kind", "accuracy"), [("gru", 0.85), ("mlp", 0.95),
                                                ("gru+mlp", 0.9)])
def test_temporal_head_prefers_the_true_order_after_a_short_fit(kind, accuracy):
    """Synthetic videos in feature space: clip k of a video shows its content p moved by
    k steps of its motion v (plus noise), and the global feature is the motion v; only
    the true order of the clips agrees with it. Fitted by maximising Eq. 7 (measured
    accuracy ~0.92 / 1.0 / 0.95 after 100 steps)."""
    torch.manual_seed(0)
    clips, dim = 4, 8

    def videos(n):
        content, motion = torch.randn(n, 1, dim), torch.randn(n, 1, dim)
        steps = torch.arange(clips).view(1, -1, 1)
        return content + steps * motion + 0.1 * torch.randn(n, clips, dim), motion[:, 0]

    head = TemporalDependencyHead(kind, dim, clips, hidden=32)
    optimiser = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(100):
        features, global_features = videos(64)
        shuffled = _shuffle(features, shuffled_orders(64, clips, 2))
        mi = donsker_varadhan(head(features, global_features),
                              head(shuffled, global_features.repeat_interleave(2, 0)))
        optimiser.zero_grad()
        (-mi).backward()
        optimiser.step()
    with torch.no_grad():
        features, global_features = videos(512)
        correct = head(features, global_features)
        wrong = head(_shuffle(features, shuffled_orders(512, clips, 1)), global_features)
        assert (correct > wrong).float().mean() > accuracy


def test_shuffled_orders_are_never_the_identity():
    orders = shuffled_orders(200, 3, 4, torch.Generator().manual_seed(0))
    assert (orders.sort(-1).values == torch.arange(3)).all()
    assert not (orders == torch.arange(3)).all(-1).any()


# -- encoders, model --------------------------------------------------------------------------
def test_global_encoder_shares_weights_and_only_changes_temporal_stride():
    model, make_batch = benchmark_setup("r3d_18", 2, "cpu", **TINY)
    backbone = model.backbone.eval()
    x = torch.rand(1, 3, 8, 32, 32) * 255
    with torch.no_grad():
        plain = backbone.forward_features(x)
        with temporal_stride_one(backbone, model.global_stages):
            dense = backbone.forward_features(x)
        again = backbone.forward_features(x)
    assert plain.shape[2:] == (1, 2, 2) and dense.shape[2:] == (4, 2, 2)
    torch.testing.assert_close(again, plain)  # strides restored
    assert model.global_stages == ("layer4", "layer3")


@pytest.mark.parametrize("options", [
    {}, {"td_head": "mlp", "negatives": "pooled", "mi": False},
    {"td_head": "gru+mlp", "contrast": "instance", "clips": 2}, {"td_head": "none"},
])
def test_model_step_gives_every_parameter_a_gradient(options):
    torch.manual_seed(0)
    model, make_batch = benchmark_setup("r3d_18", 3, "cpu", **{**TINY, **options})
    batch = make_batch()
    assert batch["clips"].dtype == torch.uint8 and batch["clips"].shape[:2] == (
        3, options.get("clips", 4))
    outputs = model(batch)
    outputs["loss"].backward()
    assert torch.isfinite(outputs["loss"])
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    assert ("loss_nce" if options.get("contrast") == "instance" else "loss_rc") in outputs
    assert ("mi_td" in outputs) == (options.get("td_head", "gru") != "none")
    assert int(model.iteration) == 1


def test_invalid_settings_are_named():
    with pytest.raises(ValueError, match="td_head"):
        CAModelConfig(td_head="lstm")
    with pytest.raises(ValueError, match="global_temporal_res"):
        benchmark_setup("r3d_18", 2, "cpu", **{**TINY, "global_temporal_res": 3})
    with pytest.raises(ValueError, match="local_scale"):
        CADataConfig(local_scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="architecture"):
        benchmark_setup("s3dg", 2, "cpu", **TINY)


# -- sampler and runs ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("ca_synth")
    csv_path = generate(root, videos=8, task="direction", num_frames=32, size=(64, 48))
    short = generate(root / "short", videos=4, task="direction", num_frames=8, size=(64, 48))
    first = short.read_text().splitlines()[1].split(",")[0]
    with open(csv_path, "a") as handle:  # too short for a local clip: skipped and counted
        handle.write(f"short/{first},up\n")
    return csv_path


SMOKE_DATA = CADataConfig(num_frames=8, crop=32, decode_short=48, decode_size=(48, 64))


def test_sampler_records_nested_crops_and_segment_centres(synth):
    videos = discover(synth)
    short = [p for p, _ in videos if "short" in p][0]
    with pytest.raises(VideoTooShortError, match="shorter than one local clip"):
        ca_sample(short, np.random.default_rng(0), SMOKE_DATA)
    dataset = ClipDataset(videos, lambda path, rng: ca_sample(path, rng, SMOKE_DATA))
    batch = collate_skipping_broken([dataset[i] for i in range(len(dataset))])
    assert batch["skipped"] == 1
    assert batch["global"].shape == (8, 3, 8, 32, 32) and batch["global"].dtype == torch.uint8
    assert batch["clips"].shape == (8, 4, 3, 8, 32, 32)
    duration = batch["global_span"][:, 1:]
    centres = batch["clip_spans"].mean(-1)
    length = batch["clip_spans"][..., 1] - batch["clip_spans"][..., 0]
    k = torch.arange(4)
    low = torch.maximum(k * duration / 4, length / 2) - 1e-4
    high = torch.minimum((k + 1) * duration / 4, duration - length / 2) + 1e-4
    assert ((centres >= low) & (centres <= high)).all()
    g, c = batch["global_box"][:, None], batch["clip_boxes"]
    assert ((c[..., :2] >= g[..., :2] - 1e-6) & (c[..., 2:] <= g[..., 2:] + 1e-6)).all()
    s = correspondence(c, batch["clip_spans"], batch["clip_flips"], batch["global_box"],
                       batch["global_span"], batch["global_flip"], (2, 2, 2), (8, 2, 2))
    torch.testing.assert_close(s.sum(-1), torch.ones(8, 4, 8))


def _run(args, env=None, module=("-m", "vsslzoo.training", "ca")):
    out = subprocess.run([sys.executable, *module, *map(str, args)], capture_output=True,
                         text=True, timeout=600, env={**os.environ, **(env or {})})
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_smoke_run_lowers_the_loss_and_exports(synth, tmp_path):
    """40 Adam steps of the smoke preset on CPU; the region-contrast loss starts at
    log(64) = 4.16 (64 candidate cells, entropy floor of S ~1.2) (measured: total loss
    4.11 -> 3.71, L_rc 3.99 -> 3.71 from the first ten steps to the last ten)."""
    _run(["--data", synth, "--preset", "smoke", "--workers", "0", "--log-every", "10",
          "--out", tmp_path / "run"], env={"OMP_NUM_THREADS": "1"})
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [r["step"] for r in records] == [10, 20, 30, 40]
    assert {"loss_rc", "mi_levels", "mi_local_global", "mi_td"} <= set(records[0])
    assert records[-1]["loss"] < 0.95 * records[0]["loss"], records
    assert records[-1]["loss_rc"] < min(records[0]["loss_rc"], math.log(64)) - 0.15, records
    model = vsslzoo.load(tmp_path / "run" / "model")
    assert model.config.architecture == "r3d_18" and model.config.provenance.method == "ca"
    assert model.preprocess.frame_stride == 2 and model.preprocess.num_frames == 8
    clips = np.zeros((1, *model.preprocess.input_shape), np.uint8)
    assert model.embed(clips).shape == (1, model.embed_dim)


def _without_low_level_draws(train) -> None:
    """tau_l at zero strength (identity), so that a view does not depend on the random
    draws of the process that holds it (seeded per process)."""
    preset = train.PRESETS["smoke"]
    still = LowLevelConfig(strength=(0.0, 0.0, 0.0, 0.0), blur_sigma=(0.0, 0.0))
    train.PRESETS = {**train.PRESETS, "smoke": dataclasses.replace(
        preset, model=dataclasses.replace(preset.model, low_level=still))}


def _ca_rank(rank: int, port: int, argv: list[str]) -> None:
    from ddp_checks import as_rank

    from vsslzoo.training.ca import train

    as_rank(rank, port)
    _without_low_level_draws(train)
    train.main(argv)


def test_two_process_gloo_ddp_equals_one_process(synth, tmp_path, monkeypatch):
    """Region contrast with every process's global cells as negatives, 2 processes x 2
    videos (--sync-bn), one step, equals one process over the same 4 videos: the logged
    L_rc (mean over the processes), the gradients, weights and BatchNorm statistics.
    The terms whose pairs are drawn per process (MINE, the temporal head's shuffles) and
    tau_l's draws are off, so both runs compute the same thing."""
    from ddp_checks import assert_same_step, clean_copy, free_port, spawn_two

    from vsslzoo.training.ca import train

    data = clean_copy(synth, "short/")  # equal shares: no video skipped
    argv = ["--data", str(data), "--preset", "smoke", "--workers", "0", "--steps", "3",
            "--max-steps", "1", "--batch-size", "4", "--log-every", "1", "--no-mi",
            "--td-head", "none"]
    spawn_two(_ca_rank, (free_port(), [*argv, "--sync-bn", "--out", str(tmp_path / "two")]))
    monkeypatch.setattr(train, "PRESETS", train.PRESETS)  # restored after the test
    _without_low_level_draws(train)
    train.main([*argv, "--out", str(tmp_path / "one")])
    info = json.loads((tmp_path / "two" / "run.json").read_text())
    assert info["world_size"] == 2 and info["config"]["batch_size"] == 2
    assert info["ranks_max_weight_difference"] == 0.0
    assert info["ranks_max_buffer_difference"] == 0.0
    records = [[json.loads(line) for line in (tmp_path / run / "metrics.jsonl").open()]
               for run in ("two", "one")]
    (two,), (one,) = records
    assert two["loss_rc"] == pytest.approx(one["loss_rc"], rel=1e-4)
    assert one["loss_rc"] > 1.0  # a real contrast: 64 candidate cells (log 64 = 4.16)
    assert_same_step(tmp_path / "one" / "checkpoint.pt", tmp_path / "two" / "checkpoint.pt")


def test_flags_map_onto_the_configs_and_the_export_matches_the_zoo_entries():
    from vsslzoo.registry import get_entry
    from vsslzoo.training.ca.train import PRESETS, configs, export_preprocess, parse_args

    args = parse_args(["--data", "x", "--out", "y", "--clips", "3", "--global-temporal-res",
                       "4", "--td-head", "mlp", "--no-mi", "--no-rc", "--preset", "ucf101"])
    data, model = configs(args, PRESETS[args.preset], seed=5)
    assert (data.clips, model.clips, model.global_temporal_res, model.td_head) == (3, 3, 4, "mlp")
    assert not model.mi and model.contrast == "instance" and model.seed == 5
    for preset in ("ucf101", "k400"):
        assert export_preprocess(PRESETS[preset].data) == get_entry(f"ca-r3d18-{preset}").preprocess
