"""CORP (training/corp): clip sampler (Eq. 3), relation modules (Eq. 1, Eq. 8), the CORP_f
(Eq. 5-6) and CORP_m (3-way) objectives against naive loops, the data pipeline, the
recipe, and a smoke run that learns clip order."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import vsslzoo
from vsslzoo.training.corp.data import (
    CorpDataConfig,
    apply_augmentations,
    build_sample,
    corp_sample,
    video_frames,
)
from vsslzoo.training.corp.losses import corp_f_loss, corp_m_labels, corp_m_loss
from vsslzoo.training.corp.model import CorpConfig, CorpModel
from vsslzoo.training.corp.relation import DecouplingAttention, MixedAttention, RelationHead
from vsslzoo.training.corp.sampling import ClipSamplingError, draw_clip_starts, minimal_offset
from vsslzoo.training.corp.train import PRESETS, benchmark_setup, build_configs, export_preprocess
from vsslzoo.training.data.datasets import ClipDataset, collate_skipping_broken, discover
from vsslzoo.training.data.synthetic import generate
from vsslzoo.video.probe import probe


# ------------------------------------------------------------------ sampler (Eq. 3)
def test_minimal_offset_is_eq3():
    assert minimal_offset(100, 16, 2, 4) == pytest.approx((100 - 32) / 4)  # (L - DT) / K
    assert minimal_offset(1000, 16, 2, 2) == 32  # capped at DT
    assert minimal_offset(34, 16, 2, 4) == 1  # at least one frame


def test_sampler_respects_delta_and_terminates():
    rng = np.random.default_rng(0)
    for _ in range(300):
        num_clips, num_frames = int(rng.integers(2, 6)), int(rng.integers(1, 17))
        dilation = int(rng.integers(1, 4))
        covered = num_frames * dilation
        length = covered + num_clips - 1 + rng.choice([0, rng.uniform(0, 3), rng.uniform(0, 300)])
        delta = minimal_offset(length, num_frames, dilation, num_clips)
        for method in ("rejection", "direct"):
            starts = draw_clip_starts(length, num_frames, dilation, num_clips, rng, method=method,
                                      max_draws=50)
            assert starts.shape == (num_clips,) and np.all(np.diff(starts) >= delta - 1e-9)
            assert starts[0] >= 0 and starts[-1] <= length - covered + 1e-9
    # a valid draw exists but rejection essentially never finds it: the direct sampler ends it
    starts = draw_clip_starts(16 + 3, 8, 2, 4, rng)
    np.testing.assert_allclose(starts, [0, 1, 2, 3], atol=1e-9)
    # no valid draw: L < D*T + K - 1 (and L < D*T) -> a VsslzooError the dataset skips
    for length in (16 + 2, 10):
        with pytest.raises(ClipSamplingError, match="needs at least 19 frames"):
            draw_clip_starts(length, 8, 2, 4, rng)
    assert issubclass(ClipSamplingError, vsslzoo.VsslzooError)
    with pytest.raises(ValueError, match="method"):
        draw_clip_starts(100, 8, 2, 4, rng, method="grid")


def test_direct_sampler_has_the_rejection_law():
    rng = np.random.default_rng(1)
    draws = {m: np.stack([draw_clip_starts(40, 4, 2, 3, rng, method=m, max_draws=10**6)
                          for _ in range(1500)]) for m in ("rejection", "direct")}
    np.testing.assert_allclose(draws["rejection"].mean(0), draws["direct"].mean(0), atol=0.6)
    np.testing.assert_allclose(draws["rejection"].std(0), draws["direct"].std(0), atol=0.5)


# ------------------------------------------------------------------ relation modules
def test_decoupling_attention_parts_are_symmetric_and_antisymmetric():
    torch.manual_seed(0)
    attention = DecouplingAttention(16, symmetric_dims=5, antisymmetric_dims=7)
    x, y = torch.randn(10, 16), torch.randn(10, 16)
    torch.testing.assert_close(attention.symmetric(x, y), attention.symmetric(y, x))
    torch.testing.assert_close(attention.antisymmetric(x, y), -attention.antisymmetric(y, x))
    relation = attention(x, y)
    assert relation.shape == (10, 12)
    torch.testing.assert_close(relation[:, :5], attention.symmetric(x, y))
    torch.testing.assert_close(relation[:, 5:], attention.antisymmetric(x, y))
    # Eq. 8 term by term, as loops over g_i and (p_j, q_j)
    g, p, q = attention.g.weight, attention.p.weight, attention.q.weight
    for b in range(3):
        naive = [(g[i] @ x[b]) * (g[i] @ y[b]) for i in range(5)] + \
            [(p[j] @ x[b]) * (q[j] @ y[b]) - (q[j] @ x[b]) * (p[j] @ y[b]) for j in range(7)]
        torch.testing.assert_close(relation[b], torch.stack(naive))
    # Eq. 7: the summed vector is the bilinear form x^T M y, M = G^T G + P^T Q - Q^T P
    torch.testing.assert_close(relation.sum(-1),
                               torch.einsum("bi,ij,bj->b", x, attention.bilinear_matrix(), y))
    # pairwise broadcasting gives every ordered pair
    pairs = attention(x[:, None], y[None, :])
    assert pairs.shape == (10, 10, 12)
    torch.testing.assert_close(pairs[3, 7], attention(x[3], y[7]))


def test_mixed_attention_is_eq1():
    torch.manual_seed(0)
    attention = MixedAttention(12, heads=4)
    x, y = torch.randn(5, 12), torch.randn(5, 12)
    u, v = attention.u.weight, attention.v.weight
    naive = torch.stack([torch.stack([(u[3 * k:3 * k + 3] @ x[b]) @ (v[3 * k:3 * k + 3] @ y[b])
                                      for k in range(4)]) for b in range(5)])
    torch.testing.assert_close(attention(x, y), naive)
    with pytest.raises(ValueError, match="heads must divide"):
        MixedAttention(12, heads=5)
    with pytest.raises(ValueError, match="mlp_layers"):
        RelationHead(12, 3, mlp_layers=3)
    with pytest.raises(ValueError, match="attention must be"):
        RelationHead(12, 3, attention="dot")


# ------------------------------------------------------------------ CORP_f (Eq. 5-6)
def _naive_4b_minus_2(z, starts, relation, tau):
    """The (4B-2)-way cross-entropy, classes (k, o) for every other clip k and order o,
    probability Prob(not P1) (Eq. 5) x Prob(o | not P1) (Eq. 4), averaged as 1/B sum."""
    total = 0.0
    for a in range(z.shape[0]):
        logits, target = [], None
        for k in range(z.shape[0]):
            if k == a:
                continue
            log_order = F.log_softmax(relation(z[a], z[k]), -1)
            for order in (0, 1):  # 0: a precedes k (P2), 1: k precedes a (P3)
                if k == a ^ 1 and order == int(starts[a] > starts[k]):
                    target = len(logits)
                logits.append(z[a] @ z[k] / tau + log_order[order])
        total = total + F.cross_entropy(torch.stack(logits)[None], torch.tensor([target]))
    return total / (z.shape[0] // 2)


def test_corp_f_loss_is_the_4b_minus_2_way_cross_entropy():
    torch.manual_seed(0)
    z = F.normalize(torch.randn(10, 8), dim=1)
    starts = torch.tensor([0.0, 9, 30, 4, 1, 2, 50, 60, 7, 3])  # some pairs later-first
    relation = RelationHead(8, 2, heads=8)
    out = corp_f_loss(z, starts, relation, z, 0, temperature=0.1)
    torch.testing.assert_close(out["loss"], _naive_4b_minus_2(z, starts, relation, 0.1))
    torch.testing.assert_close(out["loss"], out["loss_nce"] + out["loss_order"])
    # the ablations keep one of the two terms
    nce = corp_f_loss(z, starts, None, z, 0, task="contrast")
    torch.testing.assert_close(nce["loss"], out["loss_nce"])
    naive_nce = sum(-torch.log_softmax(torch.cat([z[a] @ z[:a].T, z[a] @ z[a + 1:].T]) / 0.1,
                                       0)[(a ^ 1) - ((a ^ 1) > a)] for a in range(10)) / 5
    torch.testing.assert_close(nce["loss"], naive_nce)
    order = corp_f_loss(z, starts, relation, z, 0, task="order")
    torch.testing.assert_close(order["loss"], out["loss_order"])


def _gather_worker(rank, init, sizes, results):
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    from vsslzoo.training.distributed import gather_with_grad

    torch.manual_seed(0)
    everything = F.normalize(torch.randn(sum(sizes), 8), dim=1)
    start = sum(sizes[:rank])
    z = everything[start:start + sizes[rank]].clone().requires_grad_(True)
    candidates, offset = gather_with_grad(z)
    out = corp_f_loss(z, torch.arange(sizes[rank]).float(), None, candidates, offset,
                      task="contrast")
    out["loss"].backward()
    torch.save({"loss": out["loss"].detach(), "grad": z.grad}, f"{results}/{rank}.pt")
    torch.distributed.destroy_process_group()


def test_corp_f_gathers_negatives_across_processes_with_gradients(tmp_path):
    """Two gloo processes with different batch sizes (a skipped video): each process's
    loss and gradient equal those of one process holding everything."""
    sizes = (6, 4)  # clips: 3 and 2 videos
    torch.multiprocessing.spawn(_gather_worker, args=(f"file://{tmp_path}/init", sizes,
                                                      str(tmp_path)), nprocs=2)
    torch.manual_seed(0)
    everything = F.normalize(torch.randn(sum(sizes), 8), dim=1).requires_grad_(True)
    total, start = 0.0, 0
    losses = []
    for size in sizes:
        z = everything[start:start + size]
        losses.append(corp_f_loss(z, torch.arange(size).float(), None, everything, start,
                                  task="contrast")["loss"])
        total, start = total + losses[-1], start + size
    total.backward()
    start = 0
    for rank, size in enumerate(sizes):
        result = torch.load(tmp_path / f"{rank}.pt")
        torch.testing.assert_close(result["loss"], losses[rank].detach())
        torch.testing.assert_close(result["grad"], everything.grad[start:start + size])
        start += size


# ------------------------------------------------------------------ CORP_m (3-way)
def test_corp_m_labels_for_every_ordered_pair():
    rng = np.random.default_rng(0)
    videos, clips = 3, 4
    starts = torch.from_numpy(rng.permutation(40)[:videos * clips]).float()
    video_ids = torch.arange(videos).repeat_interleave(clips)
    labels = corp_m_labels(video_ids, starts)
    for i in range(videos * clips):
        for j in range(videos * clips):
            if i == j:
                expected = -1
            elif i // clips != j // clips:
                expected = 0  # P1: different videos
            else:
                expected = 1 if starts[i] < starts[j] else 2  # P2: i first, P3: j first
            assert labels[i, j] == expected, (i, j)


@pytest.mark.parametrize("task", ["contrast+order", "contrast", "order"])
def test_corp_m_loss_sums_clip_pairs_within_each_video_pair(task):
    """The paper's loop: for every video pair {v, w} (v < w), the sum of the pair
    cross-entropies of its 2K clips; averaged over the video pairs."""
    torch.manual_seed(0)
    videos, clips = 4, 3
    classes = 3 if task == "contrast+order" else 2
    logits = torch.randn(videos * clips, videos * clips, classes)
    starts = torch.randperm(100)[:videos * clips].float()
    video_ids = torch.arange(videos).repeat_interleave(clips)
    losses = []
    for v in range(videos):
        for w in range(v + 1, videos):
            members = [c for c in range(videos * clips) if c // clips in (v, w)]
            pair_loss = 0.0
            for a in members:
                for b in members:
                    same = a // clips == b // clips
                    if a == b or (task == "order" and not same):
                        continue
                    first = bool(starts[a] < starts[b])
                    target = {"contrast+order": 0 if not same else (1 if first else 2),
                              "contrast": int(same), "order": 0 if first else 1}[task]
                    pair_loss = pair_loss + F.cross_entropy(logits[a, b][None],
                                                            torch.tensor([target]))
            losses.append(pair_loss)
    out = corp_m_loss(logits, video_ids, starts, task)
    torch.testing.assert_close(out["loss"], torch.stack(losses).mean())
    assert 0 <= out["pair_acc"] <= 1
    # a process with a single video has no video pair: zero loss, graph kept for DDP
    one = corp_m_loss(logits[:clips, :clips].requires_grad_(), video_ids[:clips],
                      starts[:clips], task)
    assert one["loss"].item() == 0 and one["loss"].requires_grad


# ------------------------------------------------------------------ data pipeline
@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("corp_synth")
    labels = generate(root / "long", videos=8, task="direction", num_frames=32, size=(64, 48))
    generate(root / "short", videos=1, task="direction", num_frames=6, size=(64, 48))
    rows = [(str(path), label) for path, label in discover(labels)]
    rows.append((str(root / "short" / "videos" / "00000_left.mp4"), "left"))
    with open(root / "all.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return root / "all.csv"


def test_corp_sample_gives_k_spaced_clips_and_skips_short_videos(synth):
    config = dataclasses.replace(PRESETS["smoke"].data, num_clips=4)
    dataset = ClipDataset(discover(synth), partial(corp_sample, config=config))
    batch = collate_skipping_broken([dataset[i] for i in range(len(dataset))])
    assert batch["skipped"] == 1  # 6 frames < D*T + K - 1 = 7
    assert batch["clips"].shape == (8, 4, 3, 4, 32, 32) and batch["clips"].dtype == torch.uint8
    assert batch["clips"].float().std() > 10  # real frames, not padding
    for (path, _), starts in zip(discover(synth), batch["starts"]):
        delta = minimal_offset(video_frames(probe(path)), 4, 1, 4)
        assert starts.diff().min() >= delta - 1e-4  # float32 starts
    assert batch["flip"].dtype == torch.bool and batch["jitter"].shape == (8, 4, 4)
    assert not batch["flip"].any()  # the smoke preset does not flip


def test_build_sample_reads_the_clip_times_of_eq3():
    config = CorpDataConfig(num_clips=3, num_frames=4, frame_stride=2, crop=16, decode_short=20)
    seen = []

    def read(plans):
        seen.extend(plans)
        return {plan.span.index: np.zeros((3, 4, 20, 30), np.uint8) for plan in plans}

    sample = build_sample(read, 60, 10.0, config, np.random.default_rng(0))
    assert sample["clips"].shape == (3, 3, 4, 16, 16)
    for plan, start in zip(seen, sample["starts"].tolist()):
        np.testing.assert_allclose(plan.times, [(start + 2 * k) / 10 for k in range(4)],
                                   rtol=1e-5)


def test_augmentations_are_per_clip_and_identical_across_frames():
    clips = torch.randint(0, 256, (2, 3, 4, 8, 8), dtype=torch.uint8)
    params = {"flip": torch.tensor([True, False]), "grayscale": torch.tensor([False, True]),
              "jitter": torch.tensor([[1.0, 1.0, 1.0, 0.0]] * 2),
              "blur_sigma": torch.zeros(2)}
    out = apply_augmentations(clips, params, blur_kernel=3)
    torch.testing.assert_close(out[0], clips[0].float().flip(-1), atol=1e-3, rtol=0)
    assert torch.allclose(out[1, 0], out[1, 1]) and torch.allclose(out[1, 1], out[1, 2])


def test_configs_reject_bad_values():
    with pytest.raises(ValueError, match="num_clips must be 2 for CORP_f"):
        CorpConfig(variant="f", num_clips=3)
    with pytest.raises(ValueError, match="task must be"):
        CorpConfig(task="order+contrast")
    with pytest.raises(ValueError, match="flip_prob must be in"):
        CorpDataConfig(flip_prob=1.5)
    with pytest.raises(ValueError, match="crop_area"):
        CorpDataConfig(crop_area=(0.5, 1.5))


# ------------------------------------------------------------------ model and recipe
@pytest.mark.parametrize("variant,task,attention", [
    ("f", "contrast+order", "decoupled"), ("f", "contrast", "decoupled"),
    ("f", "order", "mixed"), ("m", "contrast+order", "decoupled"),
    ("m", "contrast", "mixed"), ("m", "order", "decoupled")])
def test_benchmark_setup_batch_trains_every_parameter(variant, task, attention, synth):
    model, make_batch = benchmark_setup("r3d_50", 3, "cpu", variant=variant, preset="smoke",
                                        task=task, attention=attention, crop=32, num_frames=4)
    batch = make_batch()
    data, _ = build_configs(variant, PRESETS["smoke"])
    real = corp_sample(discover(synth)[0][0], np.random.default_rng(0), data)
    assert set(batch) == set(real)
    for key, value in real.items():  # exactly what the DataLoader delivers, batched
        assert batch[key].shape[1:] == value.shape and batch[key].dtype == value.dtype, key
    out = model(batch)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    unused = [name for name, p in model.named_parameters() if p.grad is None]
    assert not unused  # DDP needs every parameter used in every step
    if variant == "m":
        assert "pair_acc" in out
    if task != "contrast":
        assert 0 <= out["order_acc"] <= 1


def _wipe_video(rng, frames=32, size=48):
    """A colour wiping over a textured background from a random side: the covered area
    grows with time (a strong temporal direction)."""
    cells = rng.uniform(40, 160, (size // 8, size // 8, 3))
    base = np.kron(cells, np.ones((8, 8, 1)))
    colour = rng.uniform(150, 255, 3)
    side = int(rng.integers(4))
    video = []
    for t in range(frames):
        image = np.rot90(base, side).copy()
        image[:, :int((t + 1) / frames * size)] = colour
        video.append(np.rot90(image, -side))
    return np.stack(video).astype(np.uint8).transpose(3, 0, 1, 2)  # (3, T, H, W)


def test_smoke_run_learns_clip_order(tmp_path):
    """CORP_f with the smoke preset through the real trainer, sampler, crops and
    augmentations on in-memory videos (decoding is the only step left out, for speed):
    the order accuracy of fresh pairs climbs well above chance (measured: ~0.45 over the
    first 10 steps, ~0.8 over the last 20 of 80)."""
    from vsslzoo.training.trainer import TrainConfig, Trainer

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    videos = {f"v{i}": _wipe_video(rng) for i in range(16)}
    data, method = build_configs("f", PRESETS["smoke"])

    def sample(name, sample_rng):
        frames = videos[name]

        def read(plans):
            return {p.span.index: frames[:, np.rint(np.asarray(p.times) * 10).astype(int)]
                    for p in plans}

        return build_sample(read, frames.shape[1], 10.0, data, sample_rng)

    dataset = ClipDataset([(name, None) for name in videos], sample)
    model = CorpModel("r3d_50", {"width": 0.125}, export_preprocess(data), method,
                      data.blur_kernel)
    config = TrainConfig(out=str(tmp_path), steps=80, batch_size=8, lr=3e-3, optimizer="adam",
                         weight_decay=0.0, schedule="constant", log_every=10,
                         checkpoint_every=10**6)
    Trainer(config, model, dataset).fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
    first, last = records[0]["order_acc"], np.mean([r["order_acc"] for r in records[-2:]])
    assert last > 0.65 and last > first + 0.1, [r["order_acc"] for r in records]


def test_corp_m_recipe_runs_and_exports(synth, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "vsslzoo.training", "corp", "--variant", "m",
               "--clips", "3", "--data", str(synth), "--preset", "smoke", "--workers", "0",
               "--steps", "2", "--batch-size", "3", "--log-every", "1", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    assert [r["step"] for r in records] == [1, 2]
    assert all({"loss", "pair_acc", "order_acc", "contrast_acc"} <= set(r) for r in records)
    model = vsslzoo.load(out / "model")
    assert model.config.provenance.method == "corpm"
    assert model.preprocess == export_preprocess(PRESETS["smoke"].data)
    clips = np.zeros((1, *model.preprocess.input_shape), np.uint8)
    assert model.embed(clips).shape == (1, model.embed_dim)
    bad = subprocess.run([*command[:4], "--variant", "f", "--clips", "3", "--data", "x",
                          "--out", str(tmp_path / "bad")], capture_output=True, text=True)
    assert bad.returncode != 0 and "exactly 2 clips" in bad.stderr
