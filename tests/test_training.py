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
from ddp_checks import assert_same_step, spawn_two

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


def test_cosine_warm_restarts():
    # SGDR: each cycle warms up and decays to 0 over its own length; the steps before the
    # first restart are exactly a run that ends there (so such a run can be continued)
    full = lr_schedule(1.0, 15, warmup_steps=2, restarts=[10])
    np.testing.assert_array_equal(full[:10], lr_schedule(1.0, 10, warmup_steps=2))
    np.testing.assert_allclose(full[10:12], [0.5, 1.0])
    np.testing.assert_allclose(full[12:], [0.5 * (1 + math.cos(math.pi * i / 3))
                                           for i in range(3)])
    naive = [0.5 * (1 + math.cos(math.pi * (i - 2) / 8)) if i >= 2 else (i + 1) / 2
             for i in range(10)]
    np.testing.assert_allclose(full[:10], naive)
    np.testing.assert_array_equal(lr_schedule(1.0, 8, restarts=[10]), lr_schedule(1.0, 8))
    with pytest.raises(ValueError, match="restarts need the cosine"):
        lr_schedule(1.0, 10, kind="step", milestones=[3], restarts=[5])
    with pytest.raises(ValueError, match="distinct positive"):
        lr_schedule(1.0, 10, restarts=[0])


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


def test_bad_options_and_eval_errors_are_one_line(tmp_path, tiny_folder, capsys):
    """CA's invalid combinations and ``eval linear``'s unusable inputs end with one
    ``error:`` line and exit code 1, as ParamCrop's and CORP's do (no traceback)."""
    from vsslzoo.training import __main__ as entry

    (tmp_path / "a.mp4").write_bytes(b"not a video")
    for argv in (["ca", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--clips", "1"],
                 ["ca", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--preset",
                  "smoke", "--global-temporal-res", "3"],
                 ["paramcrop", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                  "--detach-bound", "0.7"]):
        assert entry.main(argv) == 1, argv
        error = capsys.readouterr().err
        assert error.startswith("error: invalid options:") and error.count("\n") == 1, error
    with pytest.raises(SystemExit) as exit_info:  # an explicit 0 is checked, not ignored
        entry.main(["ctp", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                    "--width", "0"])
    assert exit_info.value.code == 2 and "--width 0.0: must be > 0" in capsys.readouterr().err
    from videos import write_video

    write_video(tmp_path / "v.mp4", num_frames=8, size=(64, 48))
    (tmp_path / "train.csv").write_text(f"{tmp_path / 'v.mp4'},jump\n")
    (tmp_path / "test.csv").write_text(f"{tmp_path / 'v.mp4'},run\n")
    (tmp_path / "none.csv").write_text(f"{tmp_path / 'a.mp4'},jump\n")
    for train, test, message in (("train.csv", "test.csv", "never seen in training"),
                                 ("none.csv", "test.csv", "none of the 1 videos")):
        code = entry.main(["eval", "linear", "--model", str(tiny_folder), "--train",
                           str(tmp_path / train), "--test", str(tmp_path / test)])
        error = capsys.readouterr().err
        assert code == 1 and message in error and "Traceback" not in error, error


def test_resume_restores_the_flags_not_given_again(tmp_path, monkeypatch):
    """run.json records which flags were given: on --resume an explicitly given value
    wins even when it equals the default, --no-bf16 turns bf16 off, --data is kept
    absolute, a --workers left at its default follows the new machine, and a run.json
    from before the record restores every flag not given again."""
    from vsslzoo.training.ctp.train import parse_args
    from vsslzoo.training.recipe import default_workers

    first_dir, later_dir = tmp_path / "first", tmp_path / "later"
    first_dir.mkdir(), later_dir.mkdir()
    monkeypatch.chdir(first_dir)
    first = parse_args(["--data", "data/labels.csv", "--out", "run", "--seed", "3",
                        "--workers", "2", "--bf16", "--lr", "0"])
    assert first.data == str(first_dir / "data" / "labels.csv") and first.lr == 0
    assert {"data", "out", "seed", "workers", "bf16", "lr"} <= set(first.given)
    (first_dir / "run").mkdir()
    (first_dir / "run" / "run.json").write_text(json.dumps({"args": vars(first)}))
    monkeypatch.chdir(later_dir)
    run = str(first_dir / "run")
    resumed = parse_args(["--resume", run, "--seed", "0", "--workers", "5", "--no-bf16"])
    assert (resumed.seed, resumed.workers, resumed.bf16) == (0, 5, False)
    assert resumed.data == first.data and resumed.lr == 0 and resumed.out == run
    again = parse_args(["--resume", run])
    assert (again.seed, again.workers, again.bf16) == (3, 2, True)

    no_workers = parse_args(["--data", "d.csv", "--out", "run2"])
    (later_dir / "run2").mkdir()
    (later_dir / "run2" / "run.json").write_text(json.dumps(
        {"args": {**vars(no_workers), "workers": 99}}))
    assert parse_args(["--resume", "run2"]).workers == default_workers()
    old = {k: v for k, v in vars(first).items() if k != "given"}  # before the record
    (later_dir / "run3").mkdir()
    (later_dir / "run3" / "run.json").write_text(json.dumps({"args": old}))
    restored = parse_args(["--resume", "run3", "--bf16"])
    assert (restored.seed, restored.workers, restored.lr, restored.bf16) == (3, 2, 0, True)


def test_default_workers_leave_a_core_for_the_step(monkeypatch):
    from vsslzoo.training.recipe import default_workers

    for cores, local_world, expected in ((2, "1", 1), (1, "1", 0), (16, "1", 4),
                                         (16, "8", 1), (64, "8", 4)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cores: set(range(n)),
                            raising=False)
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local_world)
        assert default_workers() == expected, (cores, local_world)


class _Rows(torch.utils.data.Dataset):
    """Eight rows ``x = (i, i, i, i)``; the indices in ``broken`` fail to decode."""

    def __init__(self, broken=()):
        self.broken = set(broken)

    def __len__(self):
        return 8

    def __getitem__(self, index):
        return None if index in self.broken else {"x": torch.full((4,), float(index))}


class _Regression(torch.nn.Module):
    """A linear layer; its loss is NaN on process ``nan_rank`` at forward ``nan_at``."""

    def __init__(self, nan_rank=None, nan_at=None):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.nan_rank, self.nan_at, self.calls = nan_rank, nan_at, 0

    def forward(self, batch):
        self.calls += 1
        loss = self.layer(batch["x"] / 8).pow(2).mean()
        if self.calls == self.nan_at and int(os.environ["RANK"]) == self.nan_rank:
            loss = loss * float("nan")
        return {"loss": loss}


def _trainer_rank(rank, init, folder, broken):
    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank))
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    from vsslzoo.training.trainer import TrainConfig, Trainer

    outcome = {}
    config = TrainConfig(out=f"{folder}/counts", steps=2, batch_size=2, lr=0.1, log_every=2)
    Trainer(config, _Regression(), _Rows(broken)).fit()
    config = TrainConfig(out=f"{folder}/nan", steps=3, batch_size=2, lr=0.1, log_every=1)
    try:
        Trainer(config, _Regression(nan_rank=1, nan_at=2), _Rows()).fit()
    except Exception as exc:  # every process must stop, and say why
        outcome["error"] = f"{type(exc).__name__}: {exc}"
    torch.save(outcome, f"{folder}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_two_processes_count_every_rank_and_stop_together_on_a_nan(tmp_path):
    """Two gloo processes: a video skipped on rank 1 is counted in ``skipped_videos``
    (which rank 0 writes), and a NaN loss on rank 1 alone stops both processes with
    FloatingPointError instead of leaving rank 0 waiting in DDP's all-reduce."""
    from vsslzoo.training.data.sampler import EpochSampler

    broken = EpochSampler(8, num_replicas=2, rank=1, seed=0).indices()[:1]  # rank 1's
    spawn_two(_trainer_rank, (f"file://{tmp_path}/init", str(tmp_path), broken), 180)
    records = [json.loads(line) for line in (tmp_path / "counts" / "metrics.jsonl").open()]
    assert [r["step"] for r in records] == [2] and records[0]["skipped_videos"] == 1
    for rank in range(2):
        error = torch.load(tmp_path / f"rank{rank}.pt")["error"]
        assert error.startswith("FloatingPointError: loss is not finite at step 1 on "
                                "process(es) [1]"), error


class _NanMetric(torch.nn.Module):
    """A finite loss beside a logged output that turns NaN at forward ``nan_at`` (the
    way a ParamCrop crop network gone NaN left NT-Xent finite and its IoU NaN)."""

    def __init__(self, nan_at):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.nan_at, self.calls = nan_at, 0

    def forward(self, batch):
        self.calls += 1
        loss = self.layer(batch["x"] / 8).pow(2).mean()
        iou = torch.tensor(float("nan") if self.calls >= self.nan_at else 0.5)
        return {"loss": loss, "iou": iou, "distance": torch.tensor(0.1)}


def test_a_non_finite_logged_output_stops_training(tmp_path):
    from vsslzoo.training.trainer import TrainConfig, Trainer

    config = TrainConfig(out=str(tmp_path / "run"), steps=4, batch_size=2, lr=0.1,
                         log_every=1, workers=0)
    trainer = Trainer(config, _NanMetric(nan_at=3), _Rows())
    with pytest.raises(FloatingPointError, match=r"^iou is not finite at step 2 "):
        trainer.fit()
    assert trainer.step == 2  # the step with the NaN output was not taken
    finite = Trainer(TrainConfig(out=str(tmp_path / "ok"), steps=4, batch_size=2, lr=0.1,
                                 log_every=1, workers=0), _NanMetric(nan_at=99), _Rows())
    finite.fit()
    assert finite.step == 4


def _run(args, env=None):
    command = [sys.executable, "-m", "vsslzoo.training", "ctp", *map(str, args)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600,
                         env={**os.environ, **(env or {})})
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def _weights(run):
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").open()]


# seed 1: the first batch of 4 holds no broken file (so one step splits into two equal
# halves under DDP), and the broken file is drawn twice in 6 steps
_SMOKE = ["--preset", "smoke", "--workers", "0", "--steps", "6", "--log-every", "1",
          "--batch-size", "4", "--seed", "1"]


@pytest.fixture(scope="module")
def ctp_step_one(synth, tmp_path_factory):
    """One step of the smoke preset in one process (a 6-step schedule stopped at 1)."""
    run = tmp_path_factory.mktemp("ctp_step_one") / "run"
    _run(["--data", synth, *_SMOKE, "--max-steps", "1", "--out", run])
    return run


def test_smoke_run_logs_checkpoints_exports_and_resumes_exactly(synth, ctp_step_one,
                                                                  tmp_path):
    import shutil

    from vsslzoo.training.data.sampler import EpochSampler

    out = _run(["--data", synth, *_SMOKE, "--out", tmp_path / "a"])
    records = _records(tmp_path / "a")
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert all({"loss", "lr", "iou", "clips_per_s"} <= set(r) for r in records)
    # the broken file (the CSV's last row) is skipped and counted each time it is drawn
    sampler, drawn = EpochSampler(17, seed=1, batch_size=4), []
    for epoch, batches in ((0, 4), (1, 2)):
        sampler.set_epoch(epoch)
        drawn += sampler.indices()[:4 * batches]
    assert drawn.count(16) == 2 and records[-1]["skipped_videos"] == 2
    # stdout is not a terminal here: one line per logged step, then the model folder
    lines = out.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("step ")] == \
        [f"{k}/6" for k in range(1, 7)]
    assert all(" loss " in line and " ETA " in line for line in lines if line.startswith("step"))
    assert lines[-1] == f"exported the trained backbone to {tmp_path / 'a' / 'model'}"
    info = json.loads((tmp_path / "a" / "run.json").read_text())
    assert {"data", "preset", "seed"} <= set(info["args"]["given"])
    model = vsslzoo.load(tmp_path / "a" / "model")  # the export is a loadable artefact
    assert model.config.provenance.kind == "trained" and model.config.architecture == \
        "r2plus1d_18"
    clips = np.zeros((1, *model.preprocess.input_shape), np.uint8)
    assert model.embed(clips).shape == (1, model.embed_dim)

    run = tmp_path / "b"
    shutil.copytree(ctp_step_one, run)
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 1
    out = _run(["--resume", run, "--export-only"])  # on demand, mid-run
    assert "exported step 1" in out.stdout
    assert vsslzoo.load(run / "model").config.provenance.notes.endswith("1 steps, batch 4")
    with open(run / "metrics.jsonl", "a") as log:  # logged past the checkpoint, then a crash
        log.write(json.dumps({"step": 2, "loss": -1.0}) + "\n" + '{"step": 3, "lo')
    _run(["--resume", run])
    resumed = _records(run)
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6] and resumed[1]["loss"] > 0
    a, b = _weights(tmp_path / "a"), _weights(run)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_two_process_gloo_ddp_equals_one_process_over_the_same_batch(synth, ctp_step_one,
                                                                     tmp_path):
    """torchrun, 2 processes x 2 videos with --sync-bn, one step: the logged loss (the mean
    over the processes), the gradients, weights and BatchNorm statistics equal those of
    one process over the same 4 videos (``ctp_step_one``); every rank ends with the same
    weights and buffers."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--master-port", "29517", "-m", "vsslzoo.training", "ctp", "--data", str(synth),
               *_SMOKE, "--max-steps", "1", "--sync-bn", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((out / "run.json").read_text())
    assert info["world_size"] == 2 and info["config"]["batch_size"] == 2
    assert info["ranks_max_weight_difference"] == 0.0
    assert info["ranks_max_buffer_difference"] == 0.0  # BatchNorm over the global batch
    (two,), (one,) = _records(out), _records(ctp_step_one)
    assert two["step"] == one["step"] == 1 and two["skipped_videos"] == 0
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-4)
    assert two["iou"] == pytest.approx(one["iou"], rel=1e-4)
    assert_same_step(ctp_step_one / "checkpoint.pt", out / "checkpoint.pt")


def test_ctp_smoke_model_fits_a_fixed_batch(synth):
    """The smoke preset's model, loss and optimiser learn: 20 Adam steps on one fixed batch
    (4 clips, their pasted patches and trajectories drawn once) more than halve the loss
    and raise the IoU (measured: loss 7.3 -> 1.7, IoU 0.49 -> 0.79). Learning to *track*
    (fresh trajectories every step) takes far longer than a CPU test: 120 smoke-preset
    steps on 64 synthetic videos moved the loss only 7.28 -> 7.03 and the IoU 0.51 -> 0.53."""
    from functools import partial

    from vsslzoo.config import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig
    from vsslzoo.training.ctp.data import ctp_sample
    from vsslzoo.training.ctp.model import CtPModel
    from vsslzoo.training.ctp.train import PRESETS

    preset = PRESETS["smoke"]
    data = preset.data
    dataset = ClipDataset(discover(synth)[:4], partial(ctp_sample, config=data))
    batch = collate_skipping_broken([dataset[i] for i in range(4)])
    assert batch.pop("skipped") == 0
    torch.manual_seed(0)
    preprocess = PreprocessConfig(num_frames=data.num_frames, frame_stride=2,
                                  resize=math.ceil(data.crop * 128 / 112),
                                  crop=(data.crop, data.crop), mean=IMAGENET_MEAN,
                                  std=IMAGENET_STD)
    model = CtPModel("r2plus1d_18", {"bn_eps": 1e-3, "midplanes": "ctp", "width": preset.width},
                     preprocess, data.num_frames, data.crop)
    optimiser = torch.optim.Adam(model.parameters(), lr=preset.lr)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is faster on a shared 2-core box
    try:
        losses, ious = [], []
        for _ in range(20):
            out = model(batch)
            optimiser.zero_grad()
            out["loss"].backward()
            optimiser.step()
            losses.append(float(out["loss"].detach()))
            ious.append(float(out["iou"]))
    finally:
        torch.set_num_threads(threads)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses
    assert np.mean(ious[-5:]) > np.mean(ious[:5]) + 0.1, ious


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
