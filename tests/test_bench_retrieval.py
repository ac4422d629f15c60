"""bench/retrieval.py on two tiny synthetic videos: the cut variants, the naive baseline,
the random-init twin and one whole run of the CLI."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from videos import write_video

ROOT = Path(__file__).resolve().parents[1]
FPS, SIZE = 24, (160, 96)  # 2 s videos -> two 1 s segments each, 0.5 s queries
SEGMENT_S, QUERY_S = 1.0, 0.5


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_retrieval", ROOT / "bench/retrieval.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("footage")
    return [write_video(folder / "a.mp4", num_frames=2 * FPS, fps=FPS, size=SIZE),
            write_video(folder / "b.mp4", num_frames=2 * FPS + 5, fps=FPS, size=SIZE,
                        speed=-3, offset=70)]


@pytest.fixture(scope="module")
def segments(footage, tmp_path_factory) -> list:
    work = tmp_path_factory.mktemp("work")
    return [s for i, path in enumerate(footage) for s in bench.cut_footage(
        path, work, segment_s=SEGMENT_S, query_s=QUERY_S, tag=f"{i:02d}_",
        damaged=path if i == 0 else None)]


def _frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24").astype(np.float32)
                         for f in container.decode(video=0)])


def test_segments_and_query_variants(segments):
    assert [(Path(s.source).name, s.index, s.start_s) for s in segments] == [
        ("a.mp4", 0, 0.0), ("a.mp4", 1, 1.0), ("b.mp4", 0, 0.0), ("b.mp4", 1, 1.0)]
    assert [sorted(s.queries) for s in segments] == [
        ["brightness", "crop80", "damaged", "flip", "reencode"]] * 2 + [
        ["brightness", "crop80", "flip", "reencode"]] * 2
    for segment in segments:
        gallery = _frames(segment.path)
        assert gallery.shape == (FPS, SIZE[1], SIZE[0], 3)  # the remainder was dropped
        middle = gallery[6:18]  # the middle 0.5 s of the 1 s segment
        query = {v: _frames(p) for v, p in segment.queries.items()}
        assert all(len(frames) == 12 for frames in query.values())
        assert query["reencode"].shape[1:3] == (32, 52)  # a third of 96x160, even
        flip = query["flip"]
        back = np.abs(flip[:, :, ::-1] - middle).mean()  # the flip of the flip
        assert back < 1 and np.abs(flip - middle).mean() > 4 + 4 * back
        # brightness: +35 where nothing clips (the background is 40)
        shift = query["brightness"][:, -20:] - middle[:, -20:]
        assert abs(float(shift.mean()) - 35) < 2
        crop = query["crop80"]
        assert crop.shape[1:3] == middle.shape[1:3]
        expected = [av.VideoFrame.from_ndarray(bench._crop80(f.astype(np.uint8)), format="rgb24")
                    .reformat(width=SIZE[0], height=SIZE[1]).to_ndarray(format="rgb24")
                    for f in middle]
        assert np.abs(crop - np.stack(expected)).mean() < 4
        if "damaged" in query:  # the "damaged copy" here is the original itself
            assert np.abs(query["damaged"] - middle).mean() < 2


def test_cut_is_deterministic(footage, segments, tmp_path):
    again = bench.cut_footage(footage[1], tmp_path, segment_s=SEGMENT_S, query_s=QUERY_S,
                              tag="01_")
    for first, second in zip(segments[2:], again):
        assert first.path.read_bytes() == second.path.read_bytes()
        for variant, path in first.queries.items():
            assert path.read_bytes() == second.queries[variant].read_bytes()


def test_naive_baseline_retrieves_unmodified_queries(footage, segments, tmp_path):
    outputs = {"same": (bench._same, 1.0, None, False)}
    queries, sources = [], []
    for i, path in enumerate(footage):
        files = bench._cut(path, 2, SEGMENT_S, QUERY_S, outputs, tmp_path, f"{i:02d}")
        for index, by_output in sorted(files.items()):
            queries.append(by_output["same"])
            sources.append(2 * i + index)
    embed = lambda paths: np.stack([bench.naive_embedding(p) for p in paths])  # noqa: E731
    gallery = embed([s.path for s in segments])
    assert gallery.shape == (4, 192)
    np.testing.assert_allclose(np.linalg.norm(gallery, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(gallery.mean(axis=1), 0, atol=1e-6)
    assert bench.recall_at_1(embed(queries), np.array(sources), gallery) == 1.0
    result = bench.evaluate(embed, segments)
    assert list(result) == ["reencode", "flip", "brightness", "crop80", "damaged", "mean"]
    assert result["damaged"] == 1.0
    assert all(0.0 <= value <= 1.0 for value in result.values())


def test_random_twin_is_the_seed_0_build(tiny_folder):
    import torch

    import vsslzoo

    model = vsslzoo.load(tiny_folder, device="cpu")
    with torch.no_grad():
        for parameter in model.network.parameters():
            parameter.add_(1.0)
    twin = bench.random_twin(model)
    assert twin.config.architecture == model.config.architecture
    assert twin.config.provenance.kind == "random-init"
    assert twin.config.name == "tiny-r3d18 (random init)"
    from vsslzoo.models import build

    torch.manual_seed(0)
    config = model.config
    expected = build(config.architecture, preprocess=config.preprocess,
                     **config.model_args).state_dict()
    for key, value in twin.network.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert not torch.equal(next(twin.network.parameters()), next(model.network.parameters()))


def test_cli_end_to_end(footage, tiny_folder, tmp_path, capsys):
    out = tmp_path / "r.json"
    report = bench.main(["--footage", *map(str, footage), "--model", str(tiny_folder),
                         "--segment", "1", "--query", "0.5", "--device", "cpu",
                         "--work", str(tmp_path / "work"), "--markdown", "--json", str(out)])
    assert json.loads(out.read_text()) == report
    assert report["segments"] == 4 and report["queries"] == dict.fromkeys(
        ["reencode", "flip", "brightness", "crop80"], 4)
    assert list(report["r_at_1"]) == ["naive (16x12 grey mean)", "tiny-r3d18",
                                      "tiny-r3d18 (random init)"]
    for row in report["r_at_1"].values():
        assert list(row) == ["reencode", "flip", "brightness", "crop80", "mean"]
        assert all(0.0 <= value <= 1.0 for value in row.values())
    printed = capsys.readouterr().out
    assert "| method | reencode | flip | brightness | crop80 | mean |" in printed
    assert "python bench/retrieval.py --footage" in printed
    assert (tmp_path / "work" / "gallery" / "00_a_01.mp4").is_file()


def test_no_model_and_no_default(monkeypatch):
    import vsslzoo

    monkeypatch.setattr(vsslzoo, "DEFAULT_MODEL", None)
    with pytest.raises(SystemExit, match="pass --model"):
        bench.main([])
