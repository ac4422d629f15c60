"""Retrieval evaluation: R@k against a naive reference, CSV reading, the CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from videos import write_video

from vsslzoo.cli import main
from vsslzoo.errors import ConfigError
from vsslzoo.evaluate import read_labelled_csv, recall_at_k


def _naive_recall(q, q_labels, g, g_labels, ks, centre, q_paths=None, g_paths=None):
    q, g = np.array(q, float), np.array(g, float)
    if centre:
        mean = g.mean(axis=0)
        q, g = q - mean, g - mean
    out = {}
    for k in ks:
        hits = 0
        for i in range(len(q)):
            sims = []
            for j in range(len(g)):
                if q_paths is not None and q_paths[i] == g_paths[j]:
                    continue
                cos = q[i] @ g[j] / (np.linalg.norm(q[i]) * np.linalg.norm(g[j]))
                sims.append((-cos, j))
            top = [j for _, j in sorted(sims)[:k]]
            hits += any(g_labels[j] == q_labels[i] for j in top)
        out[k] = hits / len(q)
    return out


@pytest.mark.parametrize("centre", [True, False])
def test_recall_matches_naive_reference(centre):
    rng = np.random.default_rng(1)
    g = rng.normal(size=(60, 8)) + 2.0
    q = rng.normal(size=(25, 8)) + 2.0
    g_labels = rng.choice(list("abcde"), 60).tolist()
    q_labels = rng.choice(list("abcde"), 25).tolist()
    ks = (1, 5, 10, 20, 50)
    got = recall_at_k(q, q_labels, g, g_labels, ks, centre=centre)
    assert got == pytest.approx(_naive_recall(q, q_labels, g, g_labels, ks, centre))
    assert all(got[a] <= got[b] for a, b in zip(ks, ks[1:]))


def test_recall_excludes_the_query_itself():
    g = np.eye(4)
    labels = ["a", "b", "a", "b"]
    paths = ["0", "1", "2", "3"]
    got = recall_at_k(g, labels, g, labels, (1,), centre=False, query_paths=paths,
                      gallery_paths=paths)
    assert got == {1: _naive_recall(g, labels, g, labels, (1,), False, paths, paths)[1]}
    assert recall_at_k(g, labels, g, labels, (1,), centre=False) == {1: 1.0}  # self-match


def test_read_labelled_csv(tmp_path):
    (tmp_path / "v").mkdir()
    csv_path = tmp_path / "set.csv"
    csv_path.write_text("path,label\nv/a.mp4,left\n/abs/b.mp4,right\n\n# comment\n")
    rows = read_labelled_csv(csv_path)
    assert rows == [(str(tmp_path / "v" / "a.mp4"), "left"), ("/abs/b.mp4", "right")]
    csv_path.write_text("v/a.mp4\n")
    with pytest.raises(ConfigError, match="expected 'path,label'"):
        read_labelled_csv(csv_path)


def test_eval_retrieval_cli_on_motion_labelled_videos(tiny_folder, tmp_path):
    """Labels are the square's motion direction. Queries are re-encodings (mpeg4) of the
    gallery's h264 videos, so each query's nearest gallery video is its own original:
    the whole pipeline must give R@1 = 1."""
    gallery, queries = ["path,label"], ["path,label"]
    for i in range(6):
        speed, label = (3, "right") if i % 2 == 0 else (-3, "left")
        write_video(tmp_path / f"g{i}.mp4", num_frames=40, speed=speed, offset=17 * i)
        write_video(tmp_path / f"q{i}.avi", num_frames=40, speed=speed, offset=17 * i,
                    codec="mpeg4")
        gallery.append(f"g{i}.mp4,{label}")
        queries.append(f"q{i}.avi,{label}")
    (tmp_path / "gallery.csv").write_text("\n".join(gallery) + "\n")
    (tmp_path / "queries.csv").write_text("\n".join(queries) + "\n")
    result = CliRunner().invoke(main, [
        "eval", "retrieval", "--gallery", str(tmp_path / "gallery.csv"),
        "--queries", str(tmp_path / "queries.csv"), "-m", str(tiny_folder), "--workers", "0",
        "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["queries"] == 6 and report["gallery"] == 6
    assert report["recall"]["R@1"] == 1.0 and report["recall"]["R@50"] == 1.0
    text = CliRunner().invoke(main, [
        "eval", "retrieval", "--gallery", str(tmp_path / "gallery.csv"),
        "--queries", str(tmp_path / "queries.csv"), "-m", str(tiny_folder), "--workers", "0"])
    assert "R@1 100.0" in text.output and "6 queries against 6 gallery videos" in text.output


def test_a_video_in_both_sets_is_embedded_once_with_progress(tiny_folder, tmp_path):
    """Issue 15.9: the queries are part of the gallery, as in a leave-one-out protocol."""
    import vsslzoo
    from vsslzoo.evaluate import evaluate_retrieval

    rows = []
    for i in range(4):
        write_video(tmp_path / f"v{i}.mp4", num_frames=24, speed=3 if i % 2 else -3)
        rows.append(f"v{i}.mp4,{'right' if i % 2 else 'left'}")
    (tmp_path / "gallery.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "queries.csv").write_text("\n".join(rows[:2] + ["v1.mp4,right"]) + "\n")
    model = vsslzoo.load(tiny_folder)
    embedded = []
    embed_raw = model.embed_raw
    model.embed_raw = lambda clips, **kw: (embedded.append(len(clips)), embed_raw(clips, **kw))[1]
    progress = []
    result = evaluate_retrieval(model, tmp_path / "gallery.csv", tmp_path / "queries.csv",
                                clips="uniform:3", on_progress=lambda *a: progress.append(a))
    assert sum(embedded) == 4 * 3  # four distinct videos, three clips each
    assert progress == [(1, 4, 0), (2, 4, 0), (3, 4, 0), (4, 4, 0)]
    assert result.queries == 3 and result.gallery == 4
    cli = CliRunner().invoke(main, [
        "eval", "retrieval", "--gallery", str(tmp_path / "gallery.csv"),
        "--queries", str(tmp_path / "queries.csv"), "-m", str(tiny_folder), "--workers", "0",
        "--clips", "uniform:3"])
    assert cli.exit_code == 0, cli.output
    assert "embedded 4/4 videos (0 failed" in cli.stderr
