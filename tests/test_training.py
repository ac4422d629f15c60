"""The training foundation: schedules, LARS, datasets, the loop (resume, DDP), CtP smoke."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import vsslzoo
from vsslzoo.training.data.datasets import ClipDataset, collate_skipping_broken, discover
from vsslzoo.training.data.synthetic import generate
from vsslzoo.training.optim import LARS, lr_schedule


def test_lr_schedules():
    cosine = lr_schedule(1.0, 10, warmup_steps=2, kind="cosine")
    np.testing.assert_allclose(cosine[:2], [0.5, 1.0])
    np.testing.assert_allclose(cosine[2:], [0.5 * (1 + math.cos(math.pi * i / 8))
                                            for i in range(8)])
    step = lr_schedule(0.1, 10, kind="step", milestones=[3, 6])
    np.testing.assert_allclose(step, [0.1] * 3 + [0.01] * 3 + [0.001] * 4)
    with pytest.raises(ValueError, match="schedule must be"):
        lr_schedule(1.0, 5, kind="linear")


def test_lars_step_matches_the_formula():
    weight = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))
    bias = torch.nn.Parameter(torch.tensor([1.0]))
    weight.grad, bias.grad = torch.tensor([[0.6, 0.8]]), torch.tensor([0.5])
    LARS([weight, bias], lr=0.1, weight_decay=0.5, trust_coefficient=0.01).step()
    grad = torch.tensor([[0.6, 0.8]]) + 0.5 * torch.tensor([[3.0, 4.0]])  # + wd * w
    trust = 0.01 * 5.0 / torch.linalg.vector_norm(grad)
    torch.testing.assert_close(weight.data, torch.tensor([[3.0, 4.0]]) - 0.1 * trust * grad)
    torch.testing.assert_close(bias.data, torch.tensor([1.0 - 0.1 * 0.5]))  # plain SGD


def test_discover_folder_tree_and_csv(tmp_path):
    from videos import write_video

    for cls in ("jump", "run"):
        (tmp_path / "tree" / cls).mkdir(parents=True)
        write_video(tmp_path / "tree" / cls / "a.mp4", num_frames=2)
    assert sorted(label for _, label in discover(tmp_path / "tree")) == ["jump", "run"]
    (tmp_path / "flat" / "x").mkdir(parents=True)
    write_video(tmp_path / "flat" / "b.mp4", num_frames=2)
    write_video(tmp_path / "flat" / "x" / "c.mp4", num_frames=2)
    assert [label for _, label in discover(tmp_path / "flat")] == [None, None]
    (tmp_path / "list.csv").write_text("path,label\nflat/b.mp4,walk\nflat/x/c.mp4\n")
    assert discover(tmp_path / "list.csv") == [(str(tmp_path / "flat/b.mp4"), "walk"),
                                               (str(tmp_path / "flat/x/c.mp4"), None)]
    with pytest.raises(vsslzoo.ConfigError, match="no video files"):
        (tmp_path / "empty").mkdir()
        discover(tmp_path / "empty")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    csv_path = generate(root, videos=16, task="direction", num_frames=24, size=(96, 80))
    with open(csv_path, "a") as handle:  # one broken file: skipped and counted
        (root / "broken.mp4").write_bytes(b"not a video")
        handle.write("broken.mp4,left\n")
    return csv_path


def test_broken_videos_are_skipped_and_counted(synth):
    from functools import partial

    from vsslzoo.training.ctp.data import CtPDataConfig, ctp_sample

    config = CtPDataConfig(num_frames=8, short_sides=(64,), crop=64)
    videos = discover(synth)
    dataset = ClipDataset(videos, partial(ctp_sample, config=config))
    items = [dataset[i] for i in range(len(dataset))]
    batch = collate_skipping_broken(items)
    assert batch["skipped"] == 1 and batch["clip"].shape == (16, 3, 8, 64, 64)
    assert batch["boxes"].shape == (16, 3, 8, 4)
    assert 0 <= batch["clip"].min() and batch["clip"].max() <= 255


def test_data_with_nothing_decodable_stops_with_an_error_not_a_hang(tmp_path, capsys):
    from vsslzoo.training import __main__ as entry

    for name in ("a.mp4", "b.mp4", "c.mkv"):
        (tmp_path / name).write_bytes(b"not a video")
    code = entry.main(["ctp", "--data", str(tmp_path), "--preset", "smoke", "--workers", "0",
                       "--batch-size", "2", "--out", str(tmp_path / "run")])
    assert code == 1
    error = capsys.readouterr().err
    assert "no usable batch" in error and "3 videos" in error and "2 skipped" in error
    code = entry.main(["ctp", "--data", str(tmp_path / "missing"), "--out", str(tmp_path)])
    assert code == 1 and "not a folder or a .csv" in capsys.readouterr().err


def _run(args, env=None):
    command = [sys.executable, "-m", "vsslzoo.training", "ctp", *map(str, args)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600,
                         env={**os.environ, **(env or {})})
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def _weights(run):
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]


def test_smoke_run_logs_checkpoints_exports_and_resumes_exactly(synth, tmp_path):
    common = ["--data", synth, "--preset", "smoke", "--workers", "0", "--steps", "6",
              "--log-every", "1", "--batch-size", "4"]
    _run([*common, "--out", tmp_path / "a"])
    records = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").open()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert all({"loss", "lr", "iou", "clips_per_s"} <= set(r) for r in records)
    assert sum(r["skipped_videos"] for r in records) >= 0
    model = vsslzoo.load(tmp_path / "a" / "model")  # the export is a loadable artefact
    assert model.config.provenance.kind == "trained" and model.config.architecture == \
        "r2plus1d_18"
    clips = np.zeros((1, *model.preprocess.input_shape), np.uint8)
    assert model.embed(clips).shape == (1, model.embed_dim)

    _run([*common, "--out", tmp_path / "b", "--max-steps", "3"])
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["step"] == 3
    out = _run(["--resume", tmp_path / "b", "--export-only"])  # on demand, mid-run
    assert "exported step 3" in out.stdout
    assert vsslzoo.load(tmp_path / "b" / "model").config.provenance.notes.endswith(
        "3 steps, batch 4")
    _run(["--resume", tmp_path / "b"])
    resumed = [json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl").open()]
    assert resumed == [1, 2, 3, 4, 5, 6]
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_two_process_gloo_ddp_ends_with_identical_weights(synth, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--master-port", "29517", "-m", "vsslzoo.training", "ctp", "--data", str(synth),
               "--preset", "smoke", "--workers", "0", "--steps", "3", "--batch-size", "4",
               "--out", str(out), "--log-every", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((out / "run.json").read_text())
    assert info["world_size"] == 2 and info["config"]["batch_size"] == 2
    assert info["ranks_max_weight_difference"] == 0.0
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").open()] == [1, 2, 3]


def test_ctp_smoke_preset_learns_to_track(synth, tmp_path):
    """The smoke preset (60 Adam steps on CPU) lowers the loss and raises the IoU of the
    predicted trajectories (measured: loss ~9.5 -> ~6.7, IoU ~0.43 -> ~0.53 by step 50)."""
    _run(["--data", synth, "--preset", "smoke", "--workers", "1", "--log-every", "10",
          "--out", tmp_path / "smoke"])
    records = [json.loads(line) for line in (tmp_path / "smoke" / "metrics.jsonl").open()]
    assert [r["step"] for r in records] == [10, 20, 30, 40, 50, 60]
    first, last = records[0], records[-1]
    assert last["loss"] < 0.85 * first["loss"], records
    assert last["iou"] > first["iou"] + 0.03, records


def test_linear_probe_on_separable_features():
    from vsslzoo.training.evaluate import linear_probe

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 4
    labels = [["a", "b", "c"][i % 3] for i in range(120)]
    x = np.stack([centres["abc".index(y)] + rng.normal(size=16) for y in labels]) + 50
    result = linear_probe(x[:90], labels[:90], x[90:], labels[90:], epochs=200)
    assert result.test_accuracy >= 0.95 and result.classes == ["a", "b", "c"]
    with pytest.raises(ValueError, match="never seen in training"):
        linear_probe(x[:3], ["a"] * 3, x[:1], ["z"])


def test_eval_command_line(synth, tiny_folder):
    clean = synth.parent / "clean.csv"
    clean.write_text("".join(line for line in synth.read_text().splitlines(True)
                             if "broken" not in line))
    base = [sys.executable, "-m", "vsslzoo.training", "eval"]
    out = subprocess.run([*base, "linear", "--model", str(tiny_folder), "--train", str(clean),
                          "--test", str(clean), "--epochs", "50"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["classes"] == 4 and 0 <= report["top1"] <= 1 and report["test_videos"] == 16
    out = subprocess.run([*base, "retrieval", "--model", str(tiny_folder), "--gallery",
                          str(clean), "--queries", str(clean)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert set(json.loads(out.stdout)["recall"]) == {"R@1", "R@5", "R@10", "R@20", "R@50"}
    out = subprocess.run([*base, "linear", "--model", str(tiny_folder)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 2 and "needs --train and --test" in out.stderr
