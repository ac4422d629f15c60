"""ParamCrop: the 3D affine crop (Eqs. 3-6), early stopping (Eq. 7), gradient reversal,
NT-Xent (Eqs. 1-2), MoCo's queue, the sampler, and a smoke run on synthetic videos."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vsslzoo
from vsslzoo.training.data.datasets import ClipDataset, discover
from vsslzoo.training.data.synthetic import generate
from vsslzoo.training.paramcrop.crop import (
    CropConfig,
    CropGenerator,
    CropParams,
    affine_matrix,
    crop_video,
    early_stopping_detach,
    map_to_ranges,
    view_disparity,
)
from vsslzoo.training.paramcrop.data import ParamCropDataConfig, paramcrop_sample
from vsslzoo.training.paramcrop.losses import KeyQueue, moco_infonce, nt_xent
from vsslzoo.training.paramcrop.model import ParamCropConfig, ParamCropModel
from vsslzoo.training.paramcrop.plot import plot_disparity, read_curves
from vsslzoo.training.paramcrop.train import benchmark_setup, build_configs, main

TINY = dict(framework="simclr", preset="smoke", width=0.125, input_frames=16, input_size=48,
            short_sides=(48, 48), out_frames=8, out_size=32, augment_after_crop=False)


@pytest.fixture(autouse=True)
def _one_thread():
    """Two cores shared with other jobs: one intra-op thread is several times faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("paramcrop_synth")
    csv_path = generate(root, videos=12, task="direction", num_frames=24, size=(64, 48))
    with open(csv_path, "a") as handle:  # too short for a 16-frame input: skipped, counted
        generate(root / "short", videos=1, task="direction", num_frames=6, size=(64, 48))
        handle.write("short/videos/" + next((root / "short" / "videos").iterdir()).name
                     + ",left\n")
    return csv_path


def _scalar(value: float, batch: int = 1) -> torch.Tensor:
    return torch.full((batch,), float(value))


# ------------------------------------------------------------------------------------
# Eqs. 3-4: the affine crop
# ------------------------------------------------------------------------------------
def test_central_parameters_reproduce_a_centre_crop():  # tolerances: 0..255, float32 grid
    video = torch.rand(2, 3, 64, 128, 128) * 255
    s = _scalar(112 / 128, 2)
    matrix = affine_matrix(s, s, _scalar(0.25, 2), _scalar(0, 2), _scalar(0, 2),
                           _scalar(0, 2), _scalar(0, 2))
    out = crop_video(video, matrix, 16, 112)
    torch.testing.assert_close(out, video[:, :, 24:40, 8:120, 8:120], atol=1e-2, rtol=0)
    one = _scalar(1.0, 2)
    zero = _scalar(0.0, 2)
    identity = affine_matrix(one, one, one, zero, zero, zero, zero)
    torch.testing.assert_close(crop_video(video, identity, 64, 128), video, atol=1e-2, rtol=0)


def test_reference_theta_returns_frames_8_to_23():
    """ParamCrop Eq. 3-4 under PyTorch's ``affine_grid`` conventions: theta
    [[112/128,0,0,0],[0,112/128,0,0],[0,0,0.25,-0.5]] on 64x128^2 -> 16x112^2 is exactly
    frames 8..23 (and the centre 112^2)."""
    frames = torch.arange(64.0).view(1, 1, 64, 1, 1).expand(1, 1, 64, 128, 128)
    video = torch.cat((frames, torch.rand(1, 2, 64, 128, 128) * 255), dim=1)
    theta = torch.tensor([[[112 / 128, 0, 0, 0], [0, 112 / 128, 0, 0], [0, 0, 0.25, -0.5]]])
    s = _scalar(112 / 128)
    ours = affine_matrix(s, s, _scalar(0.25), _scalar(0), _scalar(0), _scalar(0),
                         _scalar(-0.5))
    torch.testing.assert_close(ours, theta)
    out = crop_video(video, theta, 16, 112)
    torch.testing.assert_close(out[0, 0, :, 0, 0], torch.arange(8.0, 24.0), atol=1e-4, rtol=0)
    torch.testing.assert_close(out, video[:, :, 8:24, 8:120, 8:120], atol=1e-2, rtol=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0]) | st.floats(0, 1), min_size=6, max_size=6))
def test_crops_stay_inside_the_video_for_any_v(values):
    """Eq. 6's offset bounds: every sample point lies inside the input cube, so a video of
    ones cropped with zero padding stays all ones, and the cube's corners map inside."""
    v = torch.tensor([values])
    params = map_to_ranges(v, CropConfig(out_frames=5, out_size=7))
    matrix = params.matrix()
    corners = torch.tensor([[x, y, t, 1.0] for x in (-1, 1) for y in (-1, 1) for t in (-1, 1)])
    mapped = corners @ matrix[0].T
    assert mapped.abs().max() <= 1 + 1e-6
    assert 0.5 - 1e-6 <= float(params.scale_x) <= 1 + 1e-6
    out = crop_video(torch.ones(1, 1, 16, 20, 20), matrix, 5, 7)
    torch.testing.assert_close(out, torch.ones_like(out), atol=1e-5, rtol=0)


def test_ranges_follow_eq6_and_the_ablation_switches():
    v = torch.tensor([[0.0, 1.0, 0.5, 1.0, 0.0, 0.25]])
    p = map_to_ranges(v, CropConfig())
    assert float(p.scale_x) == 0.5 and float(p.scale_t) == 1.0 and float(p.theta) == 0.0
    assert float(p.dx) == pytest.approx(0.5) and float(p.dy) == pytest.approx(-0.5)
    assert float(p.dt) == 0.0  # s_t = 1 leaves no room to move
    fixed = map_to_ranges(v, CropConfig(spatial=False, temporal=False))
    assert float(fixed.scale_x) == pytest.approx(112 / 128) and float(fixed.dx) == 0.0
    assert float(fixed.scale_t) == 0.5 and float(fixed.dt) == 0.0
    rotated = map_to_ranges(torch.tensor([[0.5, 0.5, 1.0, 0.5, 0.5, 0.5, 0.0]]),
                            CropConfig(rotation=True, aspect_ratio=True))
    assert float(rotated.theta) == pytest.approx(math.pi / 6)
    assert float(rotated.scale_y) == 0.5 and float(rotated.scale_x) == 0.75
    with pytest.raises(ValueError, match="detach_bound"):
        CropConfig(detach_bound=0.6)
    with pytest.raises(ValueError, match="scale_min"):
        CropConfig(scale_min=0.0)


# ------------------------------------------------------------------------------------
# Eq. 5, Eq. 7 and gradient reversal
# ------------------------------------------------------------------------------------
def test_early_stopping_detaches_saturated_entries():
    v = torch.tensor([0.1, 0.19, 0.21, 0.5, 0.79, 0.81, 0.95], requires_grad=True)
    weights = torch.arange(1.0, 8.0)
    (early_stopping_detach(v, 0.2) * weights).sum().backward()
    expected = torch.where((v.detach() - 0.5).abs() <= 0.3, weights, torch.zeros(7))
    torch.testing.assert_close(v.grad, expected)
    assert v.grad[[0, 1, 5, 6]].abs().sum() == 0 and v.grad[[2, 3, 4]].abs().min() > 0

    # through the MLP: a row of W_2 whose output saturates for every clip gets no gradient
    torch.manual_seed(0)
    generator = CropGenerator(16, 32)
    with torch.no_grad():
        generator.fc2.weight[0] = generator.fc2.weight[0].abs() * 50  # v_0 -> 1
    v = generator(torch.randn(64, 16))
    assert bool(((v[:, 0] - 0.5).abs() > 0.3).all())
    early_stopping_detach(v, 0.2).sum().backward()
    assert generator.fc2.weight.grad[0].abs().max() == 0
    assert generator.fc2.weight.grad[1:].abs().max() > 0
    v_free = generator(torch.randn(64, 16))
    generator.zero_grad()
    early_stopping_detach(v_free, 0.0).sum().backward()  # b_detach = 0: nothing held
    assert generator.fc2.weight.grad[0].abs().max() > 0


def _tiny_model(**options) -> tuple[ParamCropModel, dict]:
    torch.manual_seed(0)
    model, make_batch = benchmark_setup("s3dg", 4, "cpu", **{**TINY, **options})
    torch.manual_seed(1)
    return model, make_batch()


def _gradients(model: ParamCropModel, batch: dict) -> dict[str, torch.Tensor]:
    model.zero_grad()
    model(batch)["loss"].backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_gradient_reversal_flips_only_the_cropping_mlps():
    reversed_model, batch = _tiny_model()
    plain_model, _ = _tiny_model(grl=False)
    plain_model.load_state_dict(reversed_model.state_dict())
    reversed_grads = _gradients(reversed_model, batch)
    plain_grads = _gradients(plain_model, batch)
    crop = [n for n in reversed_grads if n.startswith(("crop1.", "crop2."))]
    backbone = [n for n in reversed_grads if n.startswith(("backbone.", "head."))]
    assert len(crop) == 4 and len(backbone) > 50
    for name in crop:
        assert plain_grads[name].abs().max() > 0
        torch.testing.assert_close(reversed_grads[name], -plain_grads[name])
    for name in backbone:
        torch.testing.assert_close(reversed_grads[name], plain_grads[name])


# ------------------------------------------------------------------------------------
# Eqs. 1-2 (SimCLR) and MoCo
# ------------------------------------------------------------------------------------
def _naive_nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> float:
    views = []  # 2N views ordered (2k-1, 2k) = (first view, second view) of clip k
    for a, b in zip(z1, z2):
        views += [a, b]
    n2 = len(views)

    def c(i: int, j: int) -> float:
        a, b = views[i], views[j]
        return float(a @ b / (a.norm() * b.norm()))

    def ell(i: int, j: int) -> float:
        denominator = sum(math.exp(c(i, k) / tau) for k in range(n2) if k != i)
        return -math.log(math.exp(c(i, j) / tau) / denominator)

    return sum(ell(2 * k, 2 * k + 1) + ell(2 * k + 1, 2 * k) for k in range(n2 // 2)) / n2


def test_nt_xent_matches_a_loop_over_eq_2():
    torch.manual_seed(0)
    z1, z2 = torch.randn(5, 7), torch.randn(5, 7)
    for tau in (0.1, 0.5):
        assert float(nt_xent(z1, z2, tau)) == pytest.approx(_naive_nt_xent(z1, z2, tau),
                                                            rel=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z1, z2, 0.0)


def test_moco_infonce_matches_a_loop():
    torch.manual_seed(0)
    q, k, queue = torch.randn(3, 4), torch.randn(3, 4), torch.randn(6, 4)
    unit = lambda x: x / x.norm()  # noqa: E731
    expected = 0.0
    for qi, ki in zip(q, k):
        positive = math.exp(float(unit(qi) @ unit(ki)) / 0.2)
        negatives = sum(math.exp(float(unit(qi) @ unit(n)) / 0.2) for n in queue)
        expected += -math.log(positive / (positive + negatives)) / 3
    assert float(moco_infonce(q, k, queue, 0.2)) == pytest.approx(expected, rel=1e-5)


def test_moco_queue_is_first_in_first_out():
    queue = KeyQueue(5, 2)
    first = torch.arange(6.0).view(3, 2)
    queue.enqueue(first)
    torch.testing.assert_close(queue.keys[:3], first)
    assert int(queue.pointer) == 3
    second = 10 + torch.arange(8.0).view(4, 2)
    queue.enqueue(second)  # overwrites slots 3, 4, then the oldest two (0, 1)
    torch.testing.assert_close(queue.keys[3:], second[:2])
    torch.testing.assert_close(queue.keys[:2], second[2:])
    torch.testing.assert_close(queue.keys[2], first[2])  # the newest of the first batch stays
    assert int(queue.pointer) == 2


def test_moco_forward_enqueues_keys_and_updates_the_key_encoder():
    model, batch = _tiny_model(framework="moco", queue_size=16, moco_momentum=0.5)
    before = model.queue.keys.clone()
    out = model(batch)
    assert int(model.queue.pointer) == 8  # 2 views x 4 clips (symmetric loss)
    assert not torch.equal(model.queue.keys[:8], before[:8])
    torch.testing.assert_close(model.queue.keys[:8].norm(dim=1), torch.ones(8))
    torch.testing.assert_close(model.queue.keys[8:], before[8:])
    out["loss"].backward()
    assert all(p.grad is None for p in model.key_backbone.parameters())
    assert model.crop1.generator.fc1.weight.grad.abs().max() > 0
    assert model.crop2.generator.fc1.weight.grad.abs().max() > 0  # via the symmetric term
    name, query = next(iter(model.backbone.named_parameters()))
    key = dict(model.key_backbone.named_parameters())[name]
    old_key = key.detach().clone()
    with torch.no_grad():
        query.add_(1.0)
    model.after_step(0)
    torch.testing.assert_close(key, 0.5 * old_key + 0.5 * query.detach())


# ------------------------------------------------------------------------------------
# Figure 5 metrics, data, configs, benchmark hook
# ------------------------------------------------------------------------------------
def _cube(cx, cy, ct, s, st_) -> CropParams:
    t = lambda x: torch.tensor([float(x)])  # noqa: E731
    return CropParams(t(s), t(s), t(st_), t(0), t(cx), t(cy), t(ct), torch.zeros(1, 6))


def test_disparity_iou_and_centre_distance():
    same = view_disparity(_cube(0.2, -0.1, 0.3, 0.5, 0.6), _cube(0.2, -0.1, 0.3, 0.5, 0.6))
    assert float(same["iou"]) == pytest.approx(1.0) and float(same["distance"]) == 0.0
    # shifted by half a width in x: overlap 1/2 of each cube -> IoU (1/2) / (3/2) = 1/3
    half = view_disparity(_cube(-0.25, 0, 0, 0.5, 0.5), _cube(0.25, 0, 0, 0.5, 0.5))
    assert float(half["iou"]) == pytest.approx(1 / 3)
    assert float(half["distance"]) == pytest.approx(0.25)  # in [0, 1] units per axis
    corners = view_disparity(_cube(-0.5, -0.5, -0.5, 0.5, 0.5), _cube(0.5, 0.5, 0.5, 0.5, 0.5))
    assert float(corners["iou"]) == 0.0 and float(corners["distance"]) == pytest.approx(1.5)


@pytest.mark.parametrize("augment_after_crop", [False, True])
def test_disparity_compares_the_views_where_they_lie_in_the_video(augment_after_crop):
    """Figure 5's metric in one frame, whichever way each view was flipped: a cube whose
    red channel is the pixel column, green the row, blue the frame, so that each view's
    mean colour is the centre of the region it was cut from (in the unflipped input).
    The returned crop parameters and the disparity must describe those regions, with
    the flip before the crop (§4) or after it."""
    torch.manual_seed(0)
    model, _ = benchmark_setup("s3dg", 8, "cpu", **{**TINY, "jitter_prob": 0.0,
                                                    "flip_prob": 0.5,
                                                    "augment_after_crop": augment_after_crop})
    frames, size = 16, 48
    cube = torch.zeros(8, 3, frames, size, size)
    cube[:, 0] = torch.arange(size).float()[None, None, :]  # column
    cube[:, 1] = torch.arange(size).float()[None, :, None]  # row
    cube[:, 2] = torch.arange(frames).float()[:, None, None]  # frame
    (view1, params1), (view2, params2) = model.views({"video1": cube, "video2": cube})
    centres = []
    for view, params, sizes in ((view1, params1, (size, size, frames)),
                                (view2, params2, (size, size, frames))):
        # a pixel index i lies at (2 i + 1) / n - 1 in normalised coordinates
        centre = [(2 * view[:, c].mean(dim=(1, 2, 3)) + 1) / n - 1 for c, n in
                  zip(range(3), sizes)]
        torch.testing.assert_close(params.dx, centre[0], atol=1e-4, rtol=0)
        torch.testing.assert_close(params.dy, centre[1], atol=1e-4, rtol=0)
        torch.testing.assert_close(params.dt, centre[2], atol=1e-4, rtol=0)
        centres.append(centre)
    # both ways round occurred: a flipped view's columns run right to left
    mirrored = view1[:, 0, :, :, 0].mean((1, 2)) > view1[:, 0, :, :, -1].mean((1, 2))
    assert 0 < int(mirrored.sum()) < 8
    disparity = view_disparity(params1, params2)
    torch.testing.assert_close(disparity["distance_x"], (centres[0][0] - centres[1][0]).abs() / 2,
                               atol=1e-4, rtol=0)


def test_sampler_gives_two_uint8_views_and_skips_short_videos(synth):
    config = ParamCropDataConfig(input_frames=16, input_size=48, short_sides=(48, 56))
    videos = discover(synth)
    dataset = ClipDataset(videos, lambda path, rng: paramcrop_sample(path, rng, config))
    item = dataset[0]
    assert set(item) == {"video1", "video2"}
    assert item["video1"].shape == (3, 16, 48, 48) and item["video1"].dtype == torch.uint8
    assert not torch.equal(item["video1"], item["video2"])  # independent random crops
    assert dataset[len(videos) - 1] is None  # the 6-frame video
    with pytest.raises(vsslzoo.VsslzooError, match="needs 16"):
        paramcrop_sample(videos[-1][0], np.random.default_rng(0), config)
    centre = ParamCropDataConfig(input_frames=16, input_size=48, short_sides=(48, 48),
                                 random_crop=False)
    item = paramcrop_sample(videos[0][0], np.random.default_rng(0), centre)
    assert torch.equal(item["video1"], item["video2"])
    with pytest.raises(ValueError, match="short_sides"):
        ParamCropDataConfig(input_size=128, short_sides=(112, 160))


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="framework"):
        ParamCropConfig(framework="byol")
    with pytest.raises(ValueError, match="jitter_prob"):
        ParamCropConfig(jitter_prob=2.0)
    from vsslzoo.training.paramcrop.train import PRESETS

    with pytest.raises(ValueError, match="unknown ParamCrop option.*detach"):
        build_configs(PRESETS["k400"], detach=0.1)
    data, model = build_configs(PRESETS["k400"], framework="moco")
    assert (data.input_frames, data.input_size) == (64, 128)
    assert (model.crop.out_frames, model.crop.out_size, model.crop.detach_bound) == (16, 112,
                                                                                     0.2)
    assert model.tau == 0.2 and model.queue_size == 65536


def test_benchmark_setup_builds_a_trainable_step():
    model, make_batch = benchmark_setup("r2d3d_18", 2, "cpu", **{**TINY, "framework": "moco",
                                                                 "queue_size": 8})
    batch = make_batch()
    assert batch["video1"].shape == (2, 3, 16, 48, 48) and batch["video1"].dtype == torch.uint8
    out = model(batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and 0 <= float(out["iou"]) <= 1
    full, make_full = benchmark_setup("s3dg", 1, "meta")  # the paper's sizes, no memory
    assert make_full()["video2"].shape == (1, 3, 64, 128, 128)
    assert full.crop1.config.out_frames == 16 and full.crop1.config.out_size == 112


# ------------------------------------------------------------------------------------
# Smoke runs: the recipe end to end
# ------------------------------------------------------------------------------------
def _records(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").open()]


class _PixelEmbedding(torch.nn.Module):
    """A fixed, discriminative stand-in for a trained backbone: pooled pixels, so two
    views are similar exactly when their crops overlap."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool3d(x, (8, 4, 4)).flatten(1)
        return pooled - x.mean(dim=(1, 2, 3, 4))[:, None]


def _train_crops(batch: dict, grl: bool, steps: int = 30) -> list[dict[str, float]]:
    torch.manual_seed(0)
    model, _ = benchmark_setup("s3dg", 1, "cpu", preset="smoke", width=0.125, grl=grl,
                               input_frames=16, input_size=48, short_sides=(48, 56),
                               jitter_prob=0.0, flip_prob=0.0)
    model.backbone, model.head = _PixelEmbedding(), torch.nn.Identity()
    optimiser = torch.optim.Adam([*model.crop1.parameters(), *model.crop2.parameters()],
                                 lr=0.01)
    history = []
    for _ in range(steps):
        out = model(batch)
        optimiser.zero_grad()
        out["loss"].backward()
        optimiser.step()
        history.append({k: float(v.detach()) for k, v in out.items()})
    return history


def test_adversarial_crops_pull_the_views_apart_only_with_gradient_reversal(synth):
    """Synthetic videos, a fixed discriminative embedding, NT-Xent, 30 Adam steps of the
    two cropping MLPs (same seed, same clips; only the reversal differs). Measured:
    with reversal the centre distance goes ~0.04 -> ~1.1 and the IoU to ~0.01 (the
    detach rule then holds ~70 % of the entries); without it the MLPs minimise the loss:
    the crops grow (s_p ~0.95), the IoU stays ~0.5 and the spatial centres stay together
    (the temporal offset, nearly free in these slow videos, drifts to ~0.2)."""
    config = ParamCropDataConfig(input_frames=16, input_size=48, short_sides=(48, 56))
    dataset = ClipDataset(discover(synth)[:12],
                          lambda path, rng: paramcrop_sample(path, rng, config))
    items = [dataset[i] for i in range(12)]
    batch = {key: torch.stack([item[key] for item in items]) for key in ("video1", "video2")}
    on, off = _train_crops(batch, grl=True), _train_crops(batch, grl=False)
    start = on[0]
    assert start["distance"] < 0.15 and start["iou"] > 0.6
    assert min(r["distance"] for r in on[-5:]) > start["distance"] + 0.6, on
    assert max(r["iou"] for r in on[-5:]) < 0.1
    assert on[-1]["loss"] > start["loss"] + 2  # the crops maximise the contrastive loss
    spatial = [r["distance_x"] + r["distance_y"] for r in off]
    assert max(spatial[-5:]) < 0.15 < min(r["distance_x"] + r["distance_y"] for r in on[-5:])
    assert min(r["iou"] for r in off[-5:]) > 0.3
    assert off[-1]["loss"] < start["loss"]


def test_smoke_run_logs_disparity_plots_and_exports(synth, tmp_path):
    """The recipe end to end: 20 steps of the smoke preset (real backbone), Figure-5
    metrics in metrics.jsonl, disparity.png, and a loadable exported backbone."""
    run = tmp_path / "run"
    main(["--data", str(synth), "--preset", "smoke", "--workers", "0", "--log-every", "2",
          "--out", str(run)])
    records = _records(run)
    assert [r["step"] for r in records] == list(range(2, 21, 2))
    assert {"loss", "iou", "distance", "distance_t", "detached", "scale_p"} <= set(records[0])
    assert sum(r["skipped_videos"] for r in records) >= 1  # the short video
    assert all(math.isfinite(r["loss"]) and 0 <= r["iou"] <= 1 for r in records)
    assert records[0]["distance"] < 0.15 < records[-1]["distance"]  # the views move apart
    png = (run / "disparity.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    model = vsslzoo.load(run / "model")
    assert model.config.provenance.method == "paramcrop"
    assert model.config.architecture == "s3dg"
    assert model.preprocess.input_shape == (3, 8, 32, 32)
    assert model.preprocess.mean == (0.45, 0.45, 0.45)
    clips = np.zeros((1, *model.preprocess.input_shape), np.uint8)
    assert model.embed(clips).shape == (1, model.embed_dim)


def test_plot_draws_figure_5_from_metrics(tmp_path):
    pytest.importorskip("matplotlib", reason="the plot needs the train extra")
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps({"step": s, "iou": 0.9 - s / 200, "distance": s / 100})
                               + "\n" for s in range(1, 101)) + json.dumps({"step": 101}))
    from matplotlib.image import imread

    out = plot_disparity(metrics, tmp_path / "plot.png")
    image = imread(out)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert (image[..., :3].std(axis=(0, 1)) > 0).all()  # something was drawn
    curves = read_curves(metrics)
    assert len(curves["step"]) == 100  # the record without disparity keys is skipped


def _free_port() -> int:
    import socket

    with socket.socket() as handle:  # ports other jobs on this machine may hold vary
        handle.bind(("127.0.0.1", 0))
        return handle.getsockname()[1]


def _nt_xent_rank(rank: int, port: int, z1: torch.Tensor, z2: torch.Tensor, folder: str
                  ) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    rows = [range(0, 3), range(3, 5)][rank]  # unequal shares, as after a skipped video
    local1 = z1[rows.start:rows.stop].clone().requires_grad_()
    local2 = z2[rows.start:rows.stop].clone().requires_grad_()
    loss = nt_xent(local1, local2, 0.2)
    (loss * len(rows) / len(z1)).backward()  # weights that make the ranks' sum the mean
    torch.save({"loss": loss.detach(), "grad1": local1.grad, "grad2": local2.grad},
               f"{folder}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_nt_xent_across_two_processes_equals_one_big_batch(tmp_path):
    """Negatives gathered with gradient (torch.distributed.nn.all_gather), unequal
    per-process batches: the weighted losses and every row's gradient equal the
    single-process NT-Xent over all 2N views."""
    torch.manual_seed(0)
    z1, z2 = torch.randn(5, 6), torch.randn(5, 6)
    torch.multiprocessing.spawn(_nt_xent_rank, args=(_free_port(), z1, z2, str(tmp_path)), nprocs=2)
    parts = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    full1, full2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    loss = nt_xent(full1, full2, 0.2)
    loss.backward()
    combined = (3 * parts[0]["loss"] + 2 * parts[1]["loss"]) / 5
    torch.testing.assert_close(combined, loss.detach())
    torch.testing.assert_close(torch.cat([p["grad1"] for p in parts]), full1.grad)
    torch.testing.assert_close(torch.cat([p["grad2"] for p in parts]), full2.grad)


def _deterministic_views(train) -> None:
    """No flip, no jitter: with --no-spatial --no-temporal a view is then a function of its
    video alone, not of the random draws of the process that holds it (seeded per
    process, so they differ between a 2-process run and a 1-process run)."""
    options = train._options
    train._options = lambda args: {**options(args), "flip_prob": 0.0, "jitter_prob": 0.0}


def _moco_rank(rank: int, port: int, argv: list[str]) -> None:
    from ddp_checks import as_rank

    from vsslzoo.training.paramcrop import train

    as_rank(rank, port)
    _deterministic_views(train)
    train.main(argv)


def test_two_process_gloo_ddp_moco_equals_one_process(synth, tmp_path, monkeypatch):
    """MoCo in 2 processes x 2 videos (--sync-bn), one step, equals one process over the
    same 4 videos: the logged loss (mean over the processes), the gradients, the weights,
    the momentum-updated key encoder, the BatchNorm statistics, and the queue: the same 8
    keys (both views of every video of every process, gathered; in another order) at
    the same pointer. Every process ends with the same weights and buffers (the queue
    is kept identical on all of them)."""
    from ddp_checks import assert_same_step, clean_copy, free_port, spawn_two

    from vsslzoo.training.paramcrop import train

    data = clean_copy(synth, "short/")  # equal shares: no video skipped
    argv = ["--data", str(data), "--preset", "smoke", "--framework", "moco", "--workers",
            "0", "--steps", "3", "--max-steps", "1", "--batch-size", "4", "--log-every", "1",
            "--no-spatial", "--no-temporal"]
    spawn_two(_moco_rank, (free_port(), [*argv, "--sync-bn", "--out", str(tmp_path / "two")]))
    monkeypatch.setattr(train, "_options", train._options)  # restored after the test
    _deterministic_views(train)
    main([*argv, "--out", str(tmp_path / "one")])
    info = json.loads((tmp_path / "two" / "run.json").read_text())
    assert info["world_size"] == 2 and info["config"]["batch_size"] == 2
    assert info["ranks_max_weight_difference"] == 0.0
    assert info["ranks_max_buffer_difference"] == 0.0
    (two,), (one,) = _records(tmp_path / "two"), _records(tmp_path / "one")
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-4)
    state = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)["model"]
    assert int(state["queue.pointer"]) == 2 * 4
    assert_same_step(tmp_path / "one" / "checkpoint.pt", tmp_path / "two" / "checkpoint.pt",
                     unordered=("queue.keys",))
