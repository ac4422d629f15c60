"""ONNX export with parity checks, the ONNX Runtime backend (no torch), TensorRT plumbing."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_tiny_folder
from videos import write_video

import vsslzoo
from vsslzoo.cli import main
from vsslzoo.config import PreprocessConfig
from vsslzoo.errors import ConfigError, ModelFolderError
from vsslzoo.models import list_architectures

pytest.importorskip("onnx", reason="the export extra (onnx, onnxscript, onnxruntime)")
pytest.importorskip("onnxruntime", reason="the export extra (onnx, onnxscript, onnxruntime)")

from vsslzoo.export import onnx as onnx_export  # noqa: E402
from vsslzoo.export import tensorrt as trt_export  # noqa: E402

# 8 frames so that every architecture's temporal strides fit; width 1/8 for speed
EIGHT = dict(num_frames=8, frame_stride=1, resize=36, crop=(32, 32))


def _tiny(tmp_path, arch="r3d_18", **args):
    folder = tmp_path / f"src-{arch}"
    import conftest

    saved = conftest.TINY_PREPROCESS
    conftest.TINY_PREPROCESS = EIGHT
    try:
        make_tiny_folder(folder, architecture=arch, **args)
    finally:
        conftest.TINY_PREPROCESS = saved
    return vsslzoo.load(folder, device="cpu")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One tiny r3d_18 exported once for the tests that only read the export."""
    root = tmp_path_factory.mktemp("exported")
    model = _tiny(root)
    onnx_export.export_onnx(model, root / "out")
    return model, root / "out"


def _clips(model, batch, seed=0):
    return torch.randint(0, 256, (batch, *model.preprocess.input_shape), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed)).numpy()


@pytest.mark.parametrize("arch", list_architectures())
def test_every_architecture_exports_with_parity(tmp_path, arch):
    model = _tiny(tmp_path, arch)
    report = onnx_export.export_onnx(model, tmp_path / "out")
    assert [p.batch for p in report.parity] == [1, 3] and all(p.passed for p in report.parity)
    assert all(p.cosine_min >= 0.9999 and p.max_abs_diff <= 1e-4 for p in report.parity)
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} >= {"model.onnx", "config.json",
                                               "model.safetensors", "README.md", "export.json"}
    assert not (out / "model.onnx.data").exists()  # one file
    ort_model = vsslzoo.load(out, backend="onnxruntime")
    assert ort_model.backend == "onnxruntime" and ort_model.embed_dim == model.embed_dim
    clips = _clips(model, 2, seed=1)
    np.testing.assert_allclose(ort_model.embed(clips), model.embed(clips), atol=1e-4)


def test_flip_invariant_per_frame_model_exports_with_parity(tmp_path):
    """What the default model uses (flip-invariant two passes, per-frame statistics)
    exports with parity, as its shipped graph was made (vsslzoo export)."""
    import conftest

    saved = conftest.TINY_PREPROCESS
    conftest.TINY_PREPROCESS = {**EIGHT, "normalize": "frame"}
    try:
        make_tiny_folder(tmp_path / "src", flip_invariant=True)
    finally:
        conftest.TINY_PREPROCESS = saved
    model = vsslzoo.load(tmp_path / "src", device="cpu")
    assert model.preprocess.normalize == "frame" and model.network.flip_invariant
    report = onnx_export.export_onnx(model, tmp_path / "out")
    assert all(p.passed and p.max_abs_diff <= 1e-4 for p in report.parity)
    clips = _clips(model, 2, seed=2)
    mirrored = np.ascontiguousarray(clips[..., ::-1])
    ort_model = vsslzoo.load(tmp_path / "out", backend="onnxruntime")
    np.testing.assert_allclose(ort_model.embed(clips), model.embed(clips), atol=1e-4)
    np.testing.assert_allclose(ort_model.embed(mirrored), ort_model.embed(clips), atol=1e-4)


def test_onnx_file_carries_identity_and_io(exported):
    import onnx

    _, folder = exported
    proto = onnx.load(str(folder / "model.onnx"))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["vsslzoo_config"])["architecture"] == "r3d_18"
    assert meta["vsslzoo_weights_sha256"] == vsslzoo.load(folder).weights_sha256
    assert proto.opset_import[0].version >= 17
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == "video" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert out.name == "embedding" and out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 8, 32, 32]
    info = json.loads((folder / "export.json").read_text())
    assert info["dynamic"] == "batch" and info["parity"][0]["passed"]


def test_dynamic_all_runs_other_clip_sizes(tmp_path):
    model = _tiny(tmp_path)
    onnx_export.export_onnx(model, tmp_path / "out", dynamic="all")
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "out" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    clips = torch.randint(0, 256, (2, 3, 12, 48, 40), dtype=torch.uint8)
    got = session.run(["embedding"], {"video": clips.numpy()})[0]
    with torch.no_grad():
        want = model.network.to(memory_format=torch.contiguous_format)(clips).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_parity_failure_raises_and_keeps_the_file_under_a_failed_name(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "MAX_ABS_DIFF", 0.0)  # nothing can pass
    model = _tiny(tmp_path)
    with pytest.raises(onnx_export.ExportCheckError, match="differs from PyTorch"):
        onnx_export.export_onnx(model, tmp_path / "out")
    assert (tmp_path / "out" / "model.parity-failed.onnx").is_file()
    assert not (tmp_path / "out" / "model.onnx").exists()
    with pytest.raises(ModelFolderError, match="export the model first"):
        vsslzoo.load(tmp_path / "out", backend="onnxruntime")


def test_onnx_whose_metadata_does_not_match_config_json(tmp_path, exported):
    import shutil

    from vsslzoo.config import ModelConfig

    folder = tmp_path / "out"
    shutil.copytree(exported[1], folder)
    config = ModelConfig.from_file(folder / "config.json")
    changed = config.replace(preprocess=PreprocessConfig(**{**EIGHT, "frame_stride": 2}))
    (folder / "config.json").write_text(changed.to_json())
    with pytest.raises(ModelFolderError, match="differ in preprocess"):
        vsslzoo.load(folder, backend="onnxruntime")


def test_export_of_bad_sources(tmp_path):
    with pytest.raises(vsslzoo.UnknownModelError, match="did you mean"):
        onnx_export.export_onnx("ctp-r2plus1d-k40", tmp_path / "o")
    make_tiny_folder(tmp_path / "noweights")
    (tmp_path / "noweights" / "model.safetensors").unlink()
    with pytest.raises(ModelFolderError, match="config but no weights"):
        onnx_export.export_onnx(tmp_path / "noweights", tmp_path / "o")
    result = CliRunner().invoke(main, ["export", "ctp-r3d18-k400", "--format", "onnx", "-o",
                                       str(tmp_path / "o")])
    assert result.exit_code == 1 and "no published weights" in result.output


def test_export_argument_errors(tmp_path, exported):
    model, exported_folder = exported
    with pytest.raises(ConfigError, match="opset 16 is too old"):
        onnx_export.export_onnx(model, tmp_path / "o", opset=16)
    with pytest.raises(ConfigError, match="dynamic must be"):
        onnx_export.export_onnx(model, tmp_path / "o", dynamic="time")
    with pytest.raises(ModelFolderError, match="export the model first"):
        vsslzoo.load(model.source, backend="onnxruntime")
    with pytest.raises(ConfigError, match="unknown backend 'tflite'"):
        vsslzoo.load(model.source, backend="tflite")
    with pytest.raises(ConfigError, match="the ONNX graph is fp32"):
        vsslzoo.load(exported_folder, backend="onnxruntime", precision="fp16")
    with pytest.raises(ConfigError, match="vcop pooling needs the torch backend"):
        vsslzoo.load(exported_folder, backend="onnxruntime").embed(_clips(model, 1),
                                                                   pooling="vcop")


def test_onnxruntime_extraction_end_to_end_without_torch(tmp_path, exported):
    model, out_folder = exported
    video = write_video(tmp_path / "v.mp4", num_frames=40)
    expected = model.clip_features(video, "uniform:3").embeddings
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # any 'import torch' now fails\n"
        "import json, vsslzoo\n"
        "from vsslzoo.extract import extract_videos\n"
        f"m = vsslzoo.load({str(out_folder)!r}, backend='onnxruntime')\n"
        f"(r,) = extract_videos(m, [{str(video)!r}], clips='uniform:3', workers=1)\n"
        "assert r.error is None, r.error\n"
        "print(json.dumps(r.embeddings.tolist()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    np.testing.assert_allclose(np.array(json.loads(out.stdout)), expected, atol=1e-4)


def test_cli_export_then_extract_with_onnxruntime(tmp_path):
    model = _tiny(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["export", model.source, "--format", "onnx", "-o",
                                  str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "parity batch 1: cosine" in result.output and "-> ok" in result.output
    (tmp_path / "videos").mkdir()
    write_video(tmp_path / "videos" / "a.mp4", num_frames=30)
    result = runner.invoke(main, ["extract", str(tmp_path / "videos"), "-o",
                                  str(tmp_path / "feats"), "--backend", "onnxruntime",
                                  "--model", str(tmp_path / "out"), "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert "extracted 1 video(s)" in result.output


# ------------------------------------------------------------------------------------
# TensorRT: everything around the TensorRT calls
# ------------------------------------------------------------------------------------
def _config(**pre):
    from vsslzoo.config import ModelConfig

    return ModelConfig("r3d_18", {}, 512, PreprocessConfig(**{**EIGHT, **pre}))


def test_profile_from_config():
    profile = trt_export.profile_for(_config(), min_batch=1, opt_batch=16, max_batch=64)
    assert profile.min == (1, 3, 8, 32, 32)
    assert profile.opt == (16, 3, 8, 32, 32)
    assert profile.max == (64, 3, 8, 32, 32)
    dynamic = trt_export.profile_for(_config(), frames=(4, 8, 16), height=(32, 32, 64),
                                     width=(32, 48, 64), dynamic="all")
    assert dynamic.min == (1, 3, 4, 32, 32) and dynamic.max == (64, 3, 16, 64, 64)
    assert dynamic.to_dict()["opt"] == [32, 3, 8, 32, 48]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"min_batch": 8, "opt_batch": 4}, "batch range must be MIN,OPT,MAX"),
        ({"frames": (4, 8, 16)}, "need an ONNX graph exported with --dynamic all"),
        ({"frames": (8, 4, 16), "dynamic": "all"}, "frames range"),
    ],
)
def test_profile_validation(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        trt_export.profile_for(_config(), **kwargs)


def test_batch_chunks():
    from vsslzoo.backends.tensorrt import batch_chunks

    assert batch_chunks(130, 64) == [(0, 64), (64, 128), (128, 130)]
    assert batch_chunks(0, 8) == []


def test_build_engine_checks_before_needing_tensorrt(tmp_path, exported):
    with pytest.raises(ModelFolderError, match="export ONNX first"):
        trt_export.build_engine(tmp_path)
    _, out = exported
    with pytest.raises(ConfigError, match="precision must be one of"):
        trt_export.build_engine(out, precision="int4")
    with pytest.raises(ConfigError, match="need an ONNX graph exported with --dynamic all"):
        trt_export.build_engine(out, frames=(4, 8, 16))


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                    reason="checks the message shown when TensorRT is missing")
def test_missing_tensorrt_names_the_gpu_extra(tmp_path, exported):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(exported[1], out)
    with pytest.raises(ConfigError, match=r"pip install 'vsslzoo\[gpu\]'"):
        trt_export.build_engine(out)
    (out / "model.engine").write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"vsslzoo\[gpu\]"):
        vsslzoo.load(out, backend="tensorrt")
    result = CliRunner().invoke(main, ["export", str(out), "--format", "tensorrt",
                                       "-o", str(tmp_path / "engine")])
    assert result.exit_code == 1 and "TensorRT is not installed" in result.output


def test_tensorrt_backend_needs_a_folder(tmp_path):
    with pytest.raises(ConfigError, match="TensorRT engines are built for one GPU"):
        vsslzoo.load("hf-hub:someone/model", backend="tensorrt")


def test_engine_batches_pad_below_the_profile_minimum():
    from vsslzoo.backends.tensorrt import engine_batches, pad_batch

    assert engine_batches(130, 8, 64) == [(0, 64, 64), (64, 128, 64), (128, 130, 8)]
    assert engine_batches(3, 4, 16) == [(0, 3, 4)]
    assert engine_batches(20, 1, 16) == [(0, 16, 16), (16, 20, 4)]
    chunk = torch.arange(6, dtype=torch.uint8).reshape(3, 2)
    assert pad_batch(chunk, 5).tolist() == [[0, 1], [2, 3], [4, 5], [4, 5], [4, 5]]
    assert pad_batch(chunk, 3) is chunk


class _FakeContext:
    """Stands in for a TensorRT execution context with profile batch range [lo, hi]: each
    output row is the first ``dim`` pixels of its clip, read and written through the raw
    addresses the runner passes, as the real engine does."""

    def __init__(self, lo, hi, dim):
        self.lo, self.hi, self.dim, self.shapes, self.address = lo, hi, dim, [], {}

    def set_input_shape(self, name, shape):
        assert self.lo <= shape[0] <= self.hi, f"batch {shape[0]} outside [{self.lo}, {self.hi}]"
        self.shapes.append(shape)

    def set_tensor_address(self, name, pointer):
        self.address[name] = pointer

    def execute_async_v3(self, stream):
        import ctypes

        shape = self.shapes[-1]
        count = int(np.prod(shape))
        clips = np.frombuffer((ctypes.c_uint8 * count).from_address(self.address["video"]),
                              np.uint8).reshape(shape[0], -1)
        rows = np.ascontiguousarray(clips[:, :self.dim], np.float32)
        ctypes.memmove(self.address["embedding"], rows.ctypes.data, rows.nbytes)
        return True


def test_tensorrt_runner_pads_the_last_chunk_to_the_minimum_batch(monkeypatch):
    """Issue 15.11: 21 clips on an engine built with --min-batch 8 --max-batch 16."""
    from types import SimpleNamespace

    from vsslzoo.backends.tensorrt import TensorRTEncoder

    encoder = object.__new__(TensorRTEncoder)  # no engine, no GPU: only the runner
    encoder.config = _config()
    encoder.device, encoder._torch = torch.device("cpu"), torch
    encoder.min_batch, encoder.max_batch = 8, 16
    encoder.context = _FakeContext(8, 16, encoder.embed_dim)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: SimpleNamespace(
        cuda_stream=0, synchronize=lambda: None))
    clips = np.random.default_rng(0).integers(0, 256, (21, *encoder.preprocess.input_shape),
                                              dtype=np.uint8)
    out = encoder.embed_raw(clips)
    assert [s[0] for s in encoder.context.shapes] == [16, 8]
    np.testing.assert_array_equal(out, clips.reshape(21, -1)[:, :encoder.embed_dim])


def test_engine_folder_elsewhere_keeps_the_weights_identity(tmp_path, exported, monkeypatch):
    """Issue 15.11: with -o elsewhere the engine folder gets model.safetensors and records
    the weights' sha256, so an index's model check still runs."""
    from types import SimpleNamespace

    _, folder = exported
    monkeypatch.setattr(trt_export, "require_tensorrt",
                        lambda: SimpleNamespace(__version__="10.fake"))
    monkeypatch.setattr(trt_export, "_build", lambda *args: (b"engine", b"cache"))
    trt_export.build_engine(folder, output=tmp_path / "engine", min_batch=4)
    info = json.loads((tmp_path / "engine" / "tensorrt.json").read_text())
    from vsslzoo.artefacts import sha256_of

    assert info["weights_sha256"] == sha256_of(folder / "model.safetensors")  # = in place
    assert info["profile"]["min"][0] == 4
    assert (tmp_path / "engine" / "model.safetensors").read_bytes() == \
        (folder / "model.safetensors").read_bytes()


def test_zoo_onnx_graph_is_sha256_checked(hub, restore_registry, exported):
    """Issue 15.10: a zoo entry's model.onnx is checked against ZooEntry.onnx_sha256, and
    refused before any download when the entry records none."""
    import hashlib

    from vsslzoo.config import ModelConfig, Provenance
    from vsslzoo.errors import ChecksumError, ModelNotAvailableError

    _, folder = exported
    files = {name: (folder / name).read_bytes()
             for name in ("config.json", "model.safetensors", "model.onnx")}
    hub.add_commit("someone/tiny-onnx", files)
    config = ModelConfig.from_file(folder / "config.json")
    entry = restore_registry.ZooEntry(
        name="tiny-onnx-test", method="ctp", architecture=config.architecture,
        model_args=config.model_args, embed_dim=config.embed_dim,
        preprocess=config.preprocess, data="synthetic", hub_repo="someone/tiny-onnx",
        sha256=hashlib.sha256(files["model.safetensors"]).hexdigest(),
        provenance=Provenance(kind="trained", method="ctp", data="synthetic"))
    restore_registry.register(entry)
    with pytest.raises(ModelNotAvailableError, match="records no sha256 of model.onnx.*"
                                                     "vsslzoo export tiny-onnx-test"):
        vsslzoo.load("tiny-onnx-test", backend="onnxruntime")
    assert not hub.requests  # refused before downloading a graph it could not check
    onnx_sha = hashlib.sha256(files["model.onnx"]).hexdigest()
    restore_registry.register(restore_registry.ZooEntry(
        **{**entry.__dict__, "onnx_sha256": onnx_sha}), overwrite=True)
    clips = np.random.default_rng(0).integers(0, 256, (2, *config.preprocess.input_shape),
                                              dtype=np.uint8)
    np.testing.assert_allclose(
        vsslzoo.load("tiny-onnx-test", backend="onnxruntime", device="cpu").embed_raw(clips),
        vsslzoo.load(folder, backend="onnxruntime").embed_raw(clips))
    restore_registry.register(restore_registry.ZooEntry(
        **{**entry.__dict__, "onnx_sha256": "1" * 64}), overwrite=True)
    with pytest.raises(ChecksumError, match=r"model.onnx is [0-9a-f]{64}, but the registry "
                                            r"records 1{64}"):
        vsslzoo.load("tiny-onnx-test", backend="onnxruntime", device="cpu")
