"""CtP checkpoint conversion: mmcv and torchvision layouts, built with their exact key
names and shapes, round-trip into vsslzoo model folders."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import vsslzoo
from vsslzoo.errors import ModelFolderError
from vsslzoo.models import build
from vsslzoo.training.ctp.convert import convert_ctp


def _to_mmcv(key: str) -> str:
    """vsslzoo/torchvision key -> microsoft/CtP (mmcv) key (pyvrl r3d.py naming)."""
    rules = [
        (r"^stem\.0\.(.+)$", r"stem.conv_s.\1"), (r"^stem\.1\.(.+)$", r"stem.bn_s.\1"),
        (r"^stem\.3\.(.+)$", r"stem.conv_t.\1"), (r"^stem\.4\.(.+)$", r"stem.bn_t.\1"),
        (r"^(layer\d\.\d)\.(conv[12])\.0\.0\.(.+)$", r"\1.\2.conv_s.\3"),
        (r"^(layer\d\.\d)\.(conv[12])\.0\.1\.(.+)$", r"\1.\2.bn_s.\3"),
        (r"^(layer\d\.\d)\.(conv[12])\.0\.3\.(.+)$", r"\1.\2.conv_t.\3"),
        (r"^(layer\d\.\d)\.conv([12])\.1\.(.+)$", r"\1.bn\2.\3"),
        (r"^(layer\d\.\d)\.downsample\.0\.(.+)$", r"\1.downsample.conv.\2"),
        (r"^(layer\d\.\d)\.downsample\.1\.(.+)$", r"\1.downsample_bn.\2"),
    ]
    return _rename(rules, key)


def _rename(rules, key: str) -> str:
    for pattern, replacement in rules:
        if re.match(pattern, key):
            return re.sub(pattern, replacement, key)
    raise AssertionError(key)


def _to_mmcv_r3d(key: str) -> str:
    rules = [
        (r"^stem\.0\.(.+)$", r"stem.conv.\1"), (r"^stem\.1\.(.+)$", r"stem.bn.\1"),
        (r"^(layer\d\.\d)\.(conv[12])\.0\.(.+)$", r"\1.\2.conv.\3"),
        (r"^(layer\d\.\d)\.conv([12])\.1\.(.+)$", r"\1.bn\2.\3"),
        (r"^(layer\d\.\d)\.downsample\.0\.(.+)$", r"\1.downsample.conv.\2"),
        (r"^(layer\d\.\d)\.downsample\.1\.(.+)$", r"\1.downsample_bn.\2"),
    ]
    return _rename(rules, key)


def _randomised(network):
    torch.manual_seed(0)
    with torch.no_grad():
        for name, tensor in network.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + (0.5 if "running_var" in name else 0))
    return network.eval()


def _check_same(folder, network):
    model = vsslzoo.load(folder, device="cpu")
    ours = model.network.state_dict()
    for key, value in network.state_dict().items():
        torch.testing.assert_close(ours[key], value, rtol=0, atol=0)
    clips = torch.randint(0, 256, (1, 3, 16, 112, 112), dtype=torch.uint8)
    with torch.inference_mode():
        expected = network(clips).numpy()
    np.testing.assert_allclose(model.embed_raw(clips.numpy()), expected, rtol=1e-4, atol=1e-5)
    return model


def test_mmcv_r2plus1d_checkpoint_round_trips(tmp_path):
    network = _randomised(build("r2plus1d_18", midplanes="ctp", bn_eps=1e-3))
    state = {f"module.backbone.{_to_mmcv(k)}": v for k, v in network.state_dict().items()}
    state["module.cls_head.fc.weight"] = torch.zeros(4, 512)  # the CtP head: dropped
    torch.save({"state_dict": state, "meta": {"epoch": 90}}, tmp_path / "ctp.pth")
    report = convert_ctp(tmp_path / "ctp.pth", tmp_path / "out", data="k400")
    assert report.layout == "mmcv" and report.architecture == "r2plus1d_18"
    assert report.model_args == {"midplanes": "ctp", "bn_eps": 1e-3}
    assert report.dropped == ["cls_head.fc.weight"]
    model = _check_same(tmp_path / "out", network)
    assert model.config.name == "ctp-r2plus1d-k400"
    assert model.config.provenance.kind == "converted"
    assert model.config.preprocess == vsslzoo.get_entry("ctp-r2plus1d-k400").preprocess


@pytest.mark.parametrize("midplanes", ["ctp", "torchvision"])
def test_torchvision_layout_checkpoint_round_trips(tmp_path, midplanes):
    network = _randomised(build("r2plus1d_18", midplanes=midplanes, bn_eps=1e-3))
    state = dict(network.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.zeros(400, 512), torch.zeros(400)
    torch.save(state, tmp_path / "severe.pth")
    report = convert_ctp(tmp_path / "severe.pth", tmp_path / "out")
    assert report.layout == "torchvision" and report.model_args["midplanes"] == midplanes
    assert report.dropped == ["fc.bias", "fc.weight"]
    _check_same(tmp_path / "out", network)


def test_mmcv_r3d_checkpoint_round_trips(tmp_path):
    network = _randomised(build("r3d_18", bn_eps=1e-3))
    state = {f"backbone.{_to_mmcv_r3d(k)}": v for k, v in network.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "r3d.pth")
    report = convert_ctp(tmp_path / "r3d.pth", tmp_path / "out", data="ucf101")
    assert report.architecture == "r3d_18"
    assert _check_same(tmp_path / "out", network).config.name == "ctp-r3d18-ucf101"


def test_checkpoints_that_are_not_ctp(tmp_path):
    torch.save({"state_dict": {"backbone.blocks.0.weight": torch.zeros(3)}}, tmp_path / "a.pth")
    with pytest.raises(ModelFolderError, match="no stem convolution"):
        convert_ctp(tmp_path / "a.pth", tmp_path / "o")
    small = build("r2plus1d_18", midplanes="ctp", width=0.5)
    torch.save(small.state_dict(), tmp_path / "small.pth")
    with pytest.raises(ModelFolderError, match="cannot tell the R\\(2\\+1\\)D variant"):
        convert_ctp(tmp_path / "small.pth", tmp_path / "o")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFolderError, match="not a readable PyTorch checkpoint"):
        convert_ctp(tmp_path / "junk.pth", tmp_path / "o")
    broken = {f"backbone.{_to_mmcv(k)}": v for k, v in
              build("r2plus1d_18", midplanes="ctp").state_dict().items()}
    broken["backbone.layer1.0.conv1.extra.weight"] = torch.zeros(1)
    torch.save(broken, tmp_path / "b.pth")
    with pytest.raises(ModelFolderError, match="unrecognised CtP"):
        convert_ctp(tmp_path / "b.pth", tmp_path / "o")


def test_pickled_objects_need_trust(tmp_path):
    import fractions

    network = build("r3d_18")
    torch.save({"state_dict": network.state_dict(), "meta": fractions.Fraction(1, 3)},
               tmp_path / "p.pth")
    with pytest.raises(ModelFolderError, match="--trust-pickle"):
        convert_ctp(tmp_path / "p.pth", tmp_path / "o")
    assert convert_ctp(tmp_path / "p.pth", tmp_path / "o", trust_pickle=True).layout


def test_command_line(tmp_path):
    network = build("r3d_18", bn_eps=1e-3)
    torch.save(network.state_dict(), tmp_path / "c.pth")
    out = subprocess.run([sys.executable, "-m", "vsslzoo.training", "convert", "ctp",
                          str(tmp_path / "c.pth"), "-o", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "r3d_18" in out.stdout and (tmp_path / "out" / "model.safetensors").exists()


def test_a_recipe_missing_from_the_release_says_so(monkeypatch, capsys):
    from vsslzoo.training import __main__ as entry

    monkeypatch.setattr(entry, "_recipe_released", lambda recipe: recipe != "corp")
    assert entry.main(["corp", "--data", "x"]) == 2
    assert "corp pretraining recipe is not part of this release" in capsys.readouterr().err
    assert entry._recipe_released("ctp")
