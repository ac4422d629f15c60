"""Every contrastive recipe resumes exactly: a run stopped after 2 steps and resumed ends
with the same weights and buffers (MoCo queue, draw counters, BN statistics) as one run
of 3 steps. CtP's resume is tested in test_training.py."""

from __future__ import annotations

import importlib

import pytest
import torch

from vsslzoo.training.data.synthetic import generate

RECIPES = {
    "paramcrop": ["--framework", "moco"],  # the queue and key encoder must resume too
    "ca": [],
    "corp": ["--variant", "f"],
}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    return generate(root, videos=8, task="direction", num_frames=32, size=(64, 48))


def _state(run):
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_stopped_and_resumed_run_equals_an_uninterrupted_one(recipe, synth, tmp_path):
    main = importlib.import_module(f"vsslzoo.training.{recipe}.train").main
    common = ["--data", str(synth), "--preset", "smoke", "--workers", "0", "--steps", "3",
              "--batch-size", "4", "--log-every", "1", *RECIPES[recipe]]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same kernels in both runs
    try:
        main([*common, "--out", str(tmp_path / "whole")])
        main([*common, "--out", str(tmp_path / "parts"), "--max-steps", "2"])
        step = torch.load(tmp_path / "parts" / "checkpoint.pt", weights_only=True)["step"]
        assert step == 2
        main(["--resume", str(tmp_path / "parts")])
    finally:
        torch.set_num_threads(threads)
    whole, parts = _state(tmp_path / "whole"), _state(tmp_path / "parts")
    assert whole.keys() == parts.keys()
    for key in whole:
        torch.testing.assert_close(parts[key], whole[key], rtol=1e-5, atol=1e-6,
                                   msg=lambda m, key=key: f"{recipe} {key}: {m}")
    assert (tmp_path / "parts" / "model" / "model.safetensors").exists()
