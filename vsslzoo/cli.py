"""The ``vsslzoo`` command line.

Subcommands import what they need inside their bodies, so ``vsslzoo --help`` and
``vsslzoo list`` never import torch. ``index``, ``extract`` and ``query`` run the default
model on ONNX Runtime on the CPU (``--backend auto``); on torch, ``index`` and
``extract`` import it in a background thread while their decode workers start
(``vsslzoo.loading.load_in_background``). Every :class:`~vsslzoo.errors.VsslzooError` is
printed as one line (``Error: ...``) with exit status 1, never as a traceback.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import click

from ._version import __version__
from .errors import VsslzooError


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    click.echo(f"warning: {message}", err=True)  # one line, not a source location


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except VsslzooError as exc:
            raise click.ClickException(str(exc)) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in definition order, not alphabetical


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="vsslzoo")
def main() -> None:
    """Self-supervised video backbones (CtP, ParamCrop, Controllable Augmentations, CORP):
    load, embed, index and query videos."""
    # Decode workers share the cores with the model: OpenMP threads that spin while they
    # wait for work (libgomp's default) take a core from them. Read when torch starts
    # OpenMP, so set before any command imports torch; a value the user set is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@main.command("list")
@click.argument("pattern", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--markdown", is_flag=True, help="Print the Markdown table used in README.md.")
def list_command(pattern: str | None, as_json: bool, markdown: bool) -> None:
    """List zoo models (PATTERN: a substring or shell pattern such as 'ctp-*')."""
    from . import registry

    names = registry.list_models(pattern)
    if pattern and not names:
        raise click.ClickException(
            f"no zoo model matches {pattern!r}; `vsslzoo list` shows them all"
        )
    entries = [registry.get_entry(name) for name in names]
    if as_json:
        rows = [
            {
                "name": e.name, "method": e.method, "architecture": e.architecture,
                "data": e.data, "embed_dim": e.embed_dim, "available": e.available,
                "offline": e.offline, "default": e.name == registry.DEFAULT_MODEL,
                "hub_repo": e.hub_repo,
            }
            for e in entries
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    if markdown:
        from .zoo_docs import zoo_table

        click.echo(zoo_table())
        return
    header = ("NAME", "METHOD", "BACKBONE", "DATA", "DIM", "WEIGHTS")
    def weights(e: registry.ZooEntry) -> str:
        if not e.available:
            return "not published"
        text = "embedded (offline)" if e.offline else "available"
        return text + (", default" if e.name == registry.DEFAULT_MODEL else "")

    rows_text = [
        (e.name, e.method, e.architecture, e.data, str(e.embed_dim), weights(e))
        for e in entries
    ]
    widths = [max(len(row[i]) for row in [header, *rows_text]) for i in range(len(header))]
    for row in [header, *rows_text]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _echo_info(info: dict, indent: int = 0) -> None:
    """Nested dicts as an indented outline; unset (None) fields are left out."""
    pad = "  " * indent
    for key, value in info.items():
        if value is None:
            continue
        if isinstance(value, str) and "\n" in value:
            click.echo(f"{pad}{key}:")
            for line in value.splitlines():
                click.echo(f"{pad}  {line}")
        elif isinstance(value, dict) and value:
            click.echo(f"{pad}{key}:")
            _echo_info(value, indent + 1)
        elif isinstance(value, dict):
            click.echo(f"{pad}{key}: {{}}")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            click.echo(f"{pad}{key}:")
            for item in value:
                click.echo(f"{pad}  - " + ", ".join(f"{k}: {v}" for k, v in item.items()))
        else:
            click.echo(f"{pad}{key}: {value}")


@main.command("info")
@click.argument("model", required=False)
@click.option("--revision", help="Hub branch, tag or commit (for hf-hub: and zoo names).")
@click.option("--offline", is_flag=True, help="Use the local Hugging Face cache only.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info_command(model: str | None, revision: str | None, offline: bool, as_json: bool
                 ) -> None:
    """Show a model's config, preprocessing, provenance, paper and weights location.

    MODEL is a zoo name, hf-hub:ORG/NAME[@REV] or a model folder (default: the embedded
    default model).
    """
    from .loading import describe

    info = describe(model, revision=revision, local_files_only=True if offline else None)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    obtain, weights = info.get("obtain"), info.get("weights")
    if obtain and isinstance(weights, str) and obtain in weights:  # say it once
        info["weights"] = weights.replace(obtain, "").rstrip(": ") + " (see obtain above)"
    _echo_info(info)


# vsslzoo.extract.GPU_BATCH_SIZE / CPU_BATCH_SIZE (not imported: --help stays light)
_BATCH_HELP = ("Clips per model call (default: 16 on a GPU, 8 on the CPU, where bigger "
               "batches cost memory and gain little speed).")


# vsslzoo.loading.BACKENDS_AUTO (not imported: --help stays light)
_backend_option = click.option(
    "--backend", type=click.Choice(["auto", "torch", "onnxruntime", "tensorrt"]),
    default="auto", show_default=True,
    help="auto: ONNX Runtime for a model that ships its ONNX graph (the default model) on "
         "the CPU, else torch; onnxruntime/tensorrt: MODEL is a folder made by `vsslzoo "
         "export`.")


def _default_workers() -> int:
    from .extract.run import default_workers

    return default_workers()


def _require_model(model: str | None) -> str | None:
    from .loading import DEFAULT_MODEL

    if model is None and DEFAULT_MODEL is None:
        raise click.UsageError(
            "-m/--model is required: this release ships no embedded default model yet. "
            "Pass a zoo name (`vsslzoo list`), hf-hub:ORG/NAME or a model folder."
        )
    return model


def _shard_option(command: str):
    return click.option(
        "--shard", metavar="I/N", callback=_parse_shard,
        help=f"{command} only shard I of N (0 <= I < N) of the sorted videos, by a hash of "
             "each path: N array jobs (Slurm, Kubernetes indexed jobs) cover every video "
             "exactly once and write into one folder without colliding.")


def _parse_shard(ctx, param, value):
    from .errors import ConfigError
    from .sharding import Shard

    try:
        return Shard.parse(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command("extract")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Output folder (created; re-running skips videos already there).")
@click.option("-m", "--model", help="Zoo name, hf-hub:ORG/NAME or model folder "
              "(default: the embedded default model, vsslzoo.DEFAULT_MODEL).")
@click.option("--clips", default="uniform:10", show_default=True,
              help="Clip sampling: uniform:N, sliding:SECONDS or segment:A-B.")
@click.option("--format", "fmt", type=click.Choice(["parquet", "npy"]), default="parquet",
              show_default=True, help="Parquet rows, or .npy + JSON sidecar per part.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help=_BATCH_HELP)
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Decoding processes (default: CPU count - 1, at most 8; 0: no processes); "
                   "with --engine ray: decode tasks at once (default: the cluster's CPUs "
                   "less the model workers').")
@click.option("--device", help="cpu, cuda or cuda:N (default: cuda when available).")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32",
              show_default=True, help="Autocast precision (fp16: GPU only).")
@click.option("--pooling", type=click.Choice(["avg", "vcop"]), default="avg", show_default=True,
              help="avg: global average pooling; vcop: 2x3x3 adaptive pooling, flattened.")
@click.option("--compile", "compile_model", is_flag=True, help="torch.compile the network.")
@_backend_option
@click.option("--recursive/--no-recursive", default=True, show_default=True,
              help="Search folders recursively.")
@click.option("--commit-every", default=64, show_default=True, type=click.IntRange(min=1),
              help="Videos per committed part file (what an interruption can lose at most).")
@click.option("--strict", is_flag=True, help="Exit non-zero if any video fails.")
@_shard_option("Extract")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
              show_default=True,
              help='ray: decode in Ray tasks and embed in a pool of model actors, on a local '
                   'Ray cluster or an existing one (needs pip install "vsslzoo[ray]").')
@click.option("--ray-address", metavar="ADDRESS",
              help="Ray cluster to join ('auto', ray://HOST:PORT; default: RAY_ADDRESS, "
                   "else a local cluster on this machine's cores).")
@click.option("--model-workers", type=click.IntRange(min=1), default=None,
              help="Ray: model actors (default: one per GPU the cluster has with "
                   "--gpus-per-worker, else 1).")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=0, show_default=True,
              help="Ray: GPUs per model actor (0: the actors run on CPUs).")
def extract_command(inputs, output, model, clips, fmt, batch_size, workers, device, precision,
                    pooling, compile_model, backend, recursive, commit_every, strict, shard,
                    engine, ray_address, model_workers, gpus_per_worker) -> None:
    """Extract clip- and video-level embeddings of every video in INPUTS (files, folders,
    or list files *.txt of paths or URLs, one a line).

    Writes OUTPUT/part-*.parquet (or .npy + .json): one row per clip (video_path,
    clip_index, start_s, end_s, embedding) and one row per video (level "video",
    clip_index -1). Videos that cannot be decoded are listed in OUTPUT/errors.jsonl and
    the others go on.
    """
    from tqdm import tqdm

    from .extract.run import ExtractReport, extract_to_folder

    if engine == "local" and (ray_address or model_workers or gpus_per_worker):
        raise click.UsageError("--ray-address, --model-workers and --gpus-per-worker need "
                               "--engine ray")
    report = ExtractReport(output)
    bars: list = []

    def on_start(todo: int, skipped: int) -> None:
        if skipped:
            click.echo(f"skipping {skipped} video(s) already in {output}", err=True)
        bars.append(tqdm(total=todo, unit="video", disable=None, dynamic_ncols=True))

    def on_video(result, stats) -> None:
        for bar in bars:
            bar.update(1)
            bar.set_postfix(clips_per_s=f"{stats.clips_per_s:.1f}",
                            failed=len(report.failures), refresh=False)

    ray_options = {"address": ray_address, "model_workers": model_workers,
                   "gpus_per_worker": gpus_per_worker} if engine == "ray" else None
    try:
        extract_to_folder(
            list(inputs), output, model=_require_model(model), backend=backend, device=device,
            precision=precision, compile=compile_model, clips=clips, pooling=pooling,
            batch_size=batch_size, fmt=fmt, commit_every=commit_every, shard=shard,
            recursive=recursive, engine=engine, workers=workers, ray_options=ray_options,
            report=report, on_start=on_start, on_video=on_video)
    except KeyboardInterrupt:
        for bar in bars:
            bar.close()
        click.echo(
            f"interrupted: {report.stats.videos_ok} video(s) saved to {output}; run the same "
            "command again to continue", err=True)
        raise SystemExit(130) from None
    for bar in bars:
        bar.close()
    stats, skipped, failures, partials = (report.stats, report.skipped, report.failures,
                                          report.partials)
    click.echo(
        f"extracted {stats.videos_ok} video(s), {stats.clips} clip(s) in {report.seconds:.1f} s "
        f"({stats.clips / max(report.seconds, 1e-9):.1f} clips/s) -> {output}"
        + (f" (shard {shard})" if shard else "")
        + (f"; {skipped} skipped (already done)" if skipped else "")
    )
    errors_file = os.path.join(output, f"errors-{shard.tag}.jsonl" if shard else "errors.jsonl")
    if failures:
        click.echo(f"{len(failures)} video(s) failed (listed in {errors_file}):", err=True)
        for path, reason in failures[:20]:
            click.echo(f"  {path}: {reason}", err=True)
        if len(failures) > 20:
            click.echo(f"  ... and {len(failures) - 20} more", err=True)
    if partials:
        click.echo(f"{len(partials)} video(s) are damaged; their intact clips were extracted "
                   f"(listed in {errors_file}):", err=True)
        for path, where in partials[:20]:
            click.echo(f"  {path}: {where}", err=True)
        if len(partials) > 20:
            click.echo(f"  ... and {len(partials) - 20} more", err=True)
    if failures and (strict or stats.videos_ok + skipped == 0):
        raise SystemExit(1)


@main.command("index")
@click.argument("inputs", nargs=-1, type=click.Path(exists=True))
@click.option("-o", "--output", default="vsslzoo-index", show_default=True,
              type=click.Path(file_okay=False), help="Index folder (created or updated).")
@click.option("-m", "--model", help="Zoo name, hf-hub:ORG/NAME or model folder "
              "(default: the embedded default model, vsslzoo.DEFAULT_MODEL).")
@click.option("--level", type=click.Choice(["video", "clip", "both"]), default=None,
              help="Index whole videos, moments (clips), or both (default: both, or what "
                   "the existing index has).")
@click.option("--factory", help="FAISS factory string (default: Flat below ~100k vectors, "
                                "IVF above; an existing index keeps its choice).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help=_BATCH_HELP)
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Decoding processes (default: CPU count - 1, at most 8).")
@click.option("--device", help="cpu, cuda or cuda:N (default: cuda when available).")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32",
              show_default=True)
@_backend_option
@click.option("--commit-every", default=32, show_default=True, type=click.IntRange(min=1),
              help="Videos per database transaction.")
@_shard_option("Index")
@click.option("--from-features", "features", metavar="DIR",
              type=click.Path(exists=True, file_okay=False),
              help="Index the features in DIR (written by `vsslzoo extract`, on any machine "
                   "or engine) instead of embedding videos; the model is the one DIR records.")
def index_command(inputs, output, model, level, factory, batch_size, workers, device,
                  precision, backend, commit_every, shard, features) -> None:
    """Index the videos under INPUTS (recursively) for retrieval, or the features of a
    feature folder (--from-features DIR).

    Run it again to update: only new or changed files are embedded, deleted files leave
    the index. Safe to interrupt (Ctrl-C or kill): the next run finishes the job.
    """
    from tqdm import tqdm

    from . import load
    from .index import update_index, update_index_from_features
    from .index.layout import MANIFEST, read_manifest
    from .loading import load_auto
    from .video.files import not_video_message, scan_videos

    if features is not None and inputs:
        raise click.UsageError("give video INPUTS or --from-features DIR, not both")
    if features is None and not inputs:
        raise click.UsageError("give the videos to index (INPUTS), or --from-features DIR")
    existing = os.path.exists(os.path.join(output, MANIFEST))
    if features is None:
        scan = scan_videos(list(inputs))  # what it finds wrong, update_index warns about
        if not scan.files and not existing:
            detail = f"; {not_video_message(scan.not_video)}" if scan.not_video else ""
            raise click.ClickException(f"no video files found in {', '.join(inputs)}{detail}")
    if features is not None:
        encoder = load(model, device="cpu") if model is not None else None
    else:
        if model is None and existing:
            model = read_manifest(Path(output))["model"]
        # ONNX Runtime for the default model; torch loads in the background while the
        # decode workers start
        encoder = load_auto(_require_model(model), backend=backend, device=device,
                            precision=precision)
    bars: list = []  # a bar once the plan is known, and none when there is nothing to do

    def on_plan(count: int) -> None:
        if count:
            bars.append(tqdm(total=count, unit="video", disable=None, dynamic_ncols=True))

    def on_video(path: str, error: str | None) -> None:
        for bar in bars:
            bar.update(1)

    try:
        if features is not None:
            report = update_index_from_features(
                output, features, level=level, factory=factory, model=encoder, shard=shard,
                commit_every=commit_every, on_video=on_video, on_plan=on_plan)
        else:
            report = update_index(
                output, list(inputs), encoder, level=level, factory=factory,
                batch_size=batch_size, commit_every=commit_every, on_video=on_video,
                on_plan=on_plan, shard=shard,
                workers=_default_workers() if workers is None else workers)
    except KeyboardInterrupt:
        for bar in bars:
            bar.close()
        click.echo(f"interrupted: what was embedded is saved in {output}; run the same "
                   "command again to finish", err=True)
        raise SystemExit(130) from None
    finally:
        if hasattr(encoder, "wait"):
            encoder.wait()  # never exit while the loading thread is inside torch's import
    for bar in bars:
        bar.close()
    counts = report.counts
    click.echo(
        f"{output}: {counts.get('videos', 0)} video(s), {counts.get('clips', 0)} clip(s) "
        f"indexed | this run: {report.added} added, {report.updated} updated, "
        f"{report.removed} removed, {report.unchanged} unchanged, {len(report.failed)} failed"
        + (f", {len(report.partial)} partial (damaged)" if report.partial else "")
        + f" ({report.seconds:.1f} s)")
    if report.skipped_failed:
        click.echo(f"{report.skipped_failed} file(s) that failed before and did not change "
                   "were skipped", err=True)
    for path, twin in report.duplicates:
        click.echo(f"note: {path} has the same content as {twin} (both are indexed)", err=True)
    for path, reason in report.failed[:20]:
        click.echo(f"failed: {path}: {reason}", err=True)
    if len(report.failed) > 20:
        click.echo(f"... and {len(report.failed) - 20} more failures", err=True)
    for path, where in report.partial[:20]:
        click.echo(f"partial: {path}: {where}; its intact clips are indexed", err=True)
    if len(report.partial) > 20:
        click.echo(f"... and {len(report.partial) - 20} more partial videos", err=True)
    if report.failed and counts.get("videos", 0) == 0:
        raise SystemExit(1)


def _format_time(seconds: float) -> str:
    from .index.report import format_time  # one format for the terminal and the page

    return format_time(seconds)


@main.command("query")
@click.argument("query", required=False, type=click.Path())
@click.option("-i", "--index", "index_dir", default="vsslzoo-index", show_default=True,
              type=click.Path(file_okay=False), help="Index folder.")
@click.option("-k", default=10, show_default=True, type=click.IntRange(min=1),
              help="Number of results.")
@click.option("--level", type=click.Choice(["video", "clip"]), default=None,
              help="Search whole videos or moments (default: video when indexed).")
@click.option("--start", type=click.FloatRange(min=0), help="Query moment start (seconds).")
@click.option("--end", type=click.FloatRange(min=0), help="Query moment end (seconds).")
@click.option("--id", "video_ref", help="Query with an indexed video (its id or path) "
                                        "instead of a file.")
@click.option("-m", "--model", help="Model to embed the query (must be the index's model).")
@click.option("--device", help="cpu, cuda or cuda:N.")
@_backend_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="Also write an HTML page with thumbnails of the query and the hits.")
def query_command(query, index_dir, k, level, start, end, video_ref, model, device, backend,
                  as_json, html_path) -> None:
    """Find the videos (or moments) of an index most similar to QUERY (a video file)."""
    from .index import Index

    if (query is None) == (video_ref is None):
        raise click.UsageError("give a QUERY video file or --id (not both)")
    if query is not None and not os.path.exists(query):
        raise click.BadParameter(f"{query} does not exist", param_hint="QUERY")
    encoder = None
    if model is not None:
        from . import load

        encoder = load(model, backend=backend, device=device)
    with Index.open(index_dir, model=encoder, device=device, backend=backend) as index:
        level = level or ("video" if "video" in index.levels else "clip")
        if video_ref is not None:
            ref = int(video_ref) if video_ref.isdigit() else video_ref
            vector, own_id = index.vector_of(ref, level=level, start=start, end=end)
            hits = index.search_vector(vector, k, level=level, exclude_video=own_id)
            query_label = index.db.videos_by_ids([own_id])[own_id].path
            left_out = True
        else:
            hits = index.search(query, k, level=level, start=start, end=end)
            query_label = query
            left_out = level == "video" and start is None and end is None and \
                index.db.video_by_path(os.path.abspath(query)) is not None
            if left_out:
                click.echo("note: the query video is in the index; it is left out of the "
                           "results", err=True)
        available = index.indices[level].ntotal
        sha = index.manifest.get("weights_sha256")
        produced_by = index.manifest["model"] + (f" (weights sha256 {sha[:12]}…)" if sha else "")
    if 0 < len(hits) < k:
        click.echo(f"note: only {len(hits)} result(s): the index holds {available} {level} "
                   "vector(s)" + (", less the query video's own" if left_out else ""), err=True)
    if html_path:
        from .index.report import write_html

        write_html(html_path, query_label, hits, level=level, start=start, end=end,
                   model=produced_by, index=index_dir)
        click.echo(f"wrote {html_path}", err=True)
    if as_json:
        click.echo(json.dumps({"query": query_label, "level": level, "start": start,
                               "end": end, "hits": [h.to_dict() for h in hits]}, indent=2))
        return
    if not hits:
        click.echo("no results: " + ("the index is empty" if available == 0 else
                                     "the index holds no other videos than the query's"))
        return
    click.echo(f"{'RANK':>4}  {'SCORE':>6}  {'MOMENT':>17}  PATH")
    for hit in hits:
        moment = f"{_format_time(hit.start_s)}-{_format_time(hit.end_s)}"
        click.echo(f"{hit.rank:>4}  {hit.score:6.3f}  {moment:>17}  {hit.path}")


def _triple(value: str | None) -> tuple[int, int, int] | None:
    if value is None:
        return None
    try:
        parts = tuple(int(v) for v in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise click.BadParameter(f"expected MIN,OPT,MAX (three integers), got {value!r}")
    return parts


@main.command("export")
@click.argument("model", required=False)
@click.option("--format", "fmt", type=click.Choice(["onnx", "tensorrt"]), required=True,
              help="onnx: MODEL is a zoo name, hf-hub ref or model folder; tensorrt: MODEL "
                   "is an ONNX export folder.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Output folder (a loadable model folder).")
@click.option("--dynamic", type=click.Choice(["batch", "all"]), default="batch",
              show_default=True, help="ONNX: dynamic batch only, or batch and T/H/W.")
@click.option("--opset", default=20, show_default=True, type=click.IntRange(min=17),
              help="ONNX opset.")
@click.option("--no-check", is_flag=True, help="ONNX: skip the parity check.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp16",
              show_default=True, help="TensorRT: reduced precision allowed in the engine.")
@click.option("--min-batch", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--opt-batch", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--max-batch", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--frames", help="TensorRT: MIN,OPT,MAX frames (needs --dynamic all ONNX).")
@click.option("--height", help="TensorRT: MIN,OPT,MAX height (needs --dynamic all ONNX).")
@click.option("--width", help="TensorRT: MIN,OPT,MAX width (needs --dynamic all ONNX).")
@click.option("--workspace-gb", default=8.0, show_default=True, type=float,
              help="TensorRT builder workspace.")
def export_command(model, fmt, output, dynamic, opset, no_check, precision, min_batch,
                   opt_batch, max_batch, frames, height, width, workspace_gb) -> None:
    """Export MODEL to ONNX (checked against PyTorch) or build a TensorRT engine.

    MODEL defaults to the embedded default model for ONNX; for TensorRT it is the folder
    an ONNX export wrote."""
    if fmt == "onnx":
        from .export.onnx import export_onnx
        from .loading import DEFAULT_MODEL

        model = _require_model(model) or DEFAULT_MODEL
        report = export_onnx(model, output, dynamic=dynamic, opset=opset, check=not no_check)
        click.echo(f"wrote {report.onnx_path} (opset {report.opset}, dynamic {report.dynamic},"
                   f" {report.seconds:.1f} s)")
        for parity in report.parity:
            click.echo(f"  parity batch {parity.batch}: cosine {parity.cosine_min:.7f}, max "
                       f"|diff| {parity.max_abs_diff:.2e} -> "
                       f"{'ok' if parity.passed else 'FAILED'}")
        return
    if model is None:
        raise click.UsageError("--format tensorrt needs MODEL: the folder written by "
                               "`vsslzoo export MODEL --format onnx -o FOLDER`")
    from .export.tensorrt import build_engine

    report = build_engine(model, precision=precision, min_batch=min_batch,
                          opt_batch=opt_batch, max_batch=max_batch, frames=_triple(frames),
                          height=_triple(height), width=_triple(width),
                          workspace_gb=workspace_gb, output=output)
    click.echo(f"wrote {report.engine_path} ({report.precision}, profile {report.profile}, "
               f"{report.seconds:.1f} s)")


def _progress_lines(verb: str, unit: str, every_s: float = 10.0):
    """An ``on_progress(done, total, failed)`` that prints a line to stderr at most every
    ``every_s`` seconds and at the end: readable in a log file, where a bar is not."""
    import time

    started = last = time.monotonic()

    def on_progress(done: int, total: int, failed: int) -> None:
        nonlocal last
        now = time.monotonic()
        if done < total and now - last < every_s and done > 1:
            return
        last = now
        rate = done / max(now - started, 1e-9)
        click.echo(f"{verb} {done}/{total} {unit} ({failed} failed, {rate:.1f} {unit}/s)",
                   err=True)

    return on_progress


@main.group("eval", cls=_Group)
def eval_group() -> None:
    """Evaluate a model on a labelled data set."""


@eval_group.command("retrieval")
@click.option("--gallery", required=True, type=click.Path(exists=True, dir_okay=False),
              help="CSV 'path,label' of the gallery (e.g. the train split).")
@click.option("--queries", required=True, type=click.Path(exists=True, dir_okay=False),
              help="CSV 'path,label' of the queries (e.g. the test split).")
@click.option("-m", "--model", help="Zoo name, hf-hub:ORG/NAME or model folder "
              "(default: the embedded default model, vsslzoo.DEFAULT_MODEL).")
@click.option("--clips", default="uniform:10", show_default=True,
              help="Clips averaged per video.")
@click.option("--centre/--no-centre", default=True, show_default=True,
              help="Subtract the gallery mean before normalising (CoCLR protocol).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help=_BATCH_HELP)
@click.option("--workers", type=click.IntRange(min=0), default=None)
@click.option("--device", help="cpu, cuda or cuda:N.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def eval_retrieval_command(gallery, queries, model, clips, centre, batch_size, workers,
                           device, as_json) -> None:
    """Video retrieval R@1/5/10/20/50: each query ranks the gallery by cosine similarity;
    a hit when one of the top k shares its label."""
    from . import load
    from .evaluate import evaluate_retrieval

    encoder = load(_require_model(model), device=device)
    result = evaluate_retrieval(
        encoder, gallery, queries, clips=clips, centre=centre, batch_size=batch_size,
        workers=_default_workers() if workers is None else workers,
        on_progress=_progress_lines("embedded", "videos"))
    for path, reason in result.failed:
        click.echo(f"failed (left out): {path}: {reason}", err=True)
    if as_json:
        click.echo(json.dumps({
            "recall": {f"R@{k}": v for k, v in result.recall.items()},
            "queries": result.queries, "gallery": result.gallery, "centre": result.centre,
            "clips": clips, "model": encoder.source, "failed": len(result.failed)}, indent=2))
        return
    click.echo(f"{result.queries} queries against {result.gallery} gallery videos "
               f"({clips}, centre={'on' if centre else 'off'}, cosine)")
    click.echo("  ".join(f"R@{k} {100 * v:5.1f}" for k, v in result.recall.items()))


@main.command("push")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--repo", "repo_id", required=True, metavar="ORG/NAME",
              help="Hub repository (created when missing).")
@click.option("--private", is_flag=True,
              help="Make a new repository private (an existing one keeps its visibility).")
@click.option("--revision-message", "message", metavar="TEXT",
              help="Summary of the commit (default: 'Upload NAME with vsslzoo').")
def push_command(folder, repo_id, private, message) -> None:
    """Publish the model FOLDER to the Hub as one commit (token: HF_TOKEN or `hf auth login`).

    Uploads config.json, model.safetensors, a generated model card (with the training
    command and metrics when FOLDER is RUN/model of a training run), vsslzoo.json (sha256
    of every file, embedding of a reference clip) and model.onnx + export.json when
    present. A folder that does not load strictly is refused before anything is sent.
    """
    from .publish import push_folder

    result = push_folder(folder, repo_id, private=private or None, commit_message=message)
    click.echo(f"pushed {folder} to {result.repo_id} (commit {result.commit})")
    for name, digest in result.files.items():
        click.echo(f"  {name}  sha256 {digest}")
    for note in result.notes:
        click.echo(f"note: {note}")
    click.echo(f"pinned reference: {result.reference}")
    click.echo(f"  load:   vsslzoo.load({result.reference!r})")
    click.echo(f"  check:  vsslzoo verify {result.reference}")
    click.echo(f"  zoo:    vsslzoo registry-entry {result.reference}")


@main.command("verify")
@click.argument("model", required=False)
@click.option("--device", default="cpu", show_default=True,
              help="Where to embed the reference clip (cpu compares most exactly).")
@click.option("--offline", is_flag=True, help="Use the local Hugging Face cache only.")
@click.option("--force-download", is_flag=True, help="Download the files again.")
def verify_command(model, device, offline, force_download) -> None:
    """Check a published MODEL end to end: sha256 of every file, strict load, embedding.

    MODEL is a zoo name (files checked against its pins), hf-hub:ORG/NAME[@REV] (against
    the Hub's LFS sha256 and the vsslzoo.json recorded at push time) or a folder. The
    embedding of a fixed synthetic clip must match the one recorded at push time.
    """
    from .publish import verify

    report = verify(model, device=device, local_files_only=True if offline else None,
                    force_download=force_download)
    for line in report.checks:
        click.echo(f"ok  {line}")
    click.echo(f"verified {report.reference}")


@main.command("registry-entry")
@click.argument("ref", metavar="hf-hub:ORG/NAME[@REV]")
@click.option("--name", help="Zoo name (default: NAME).")
@click.option("--method", help="Method key (default: from config.json or the name).")
@click.option("--data", help="Pretraining data key (default: the name's last part).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON dict instead of Python.")
def registry_entry_command(ref, name, method, data, as_json) -> None:
    """Print the pinned zoo entry (commit + sha256 of every file) of a published model,
    ready to paste into _BUILTIN in vsslzoo/registry.py."""
    from .publish import entry_dict, entry_source, registry_entry

    entry = registry_entry(ref, name=name, method=method, data=data)
    if as_json:
        click.echo(json.dumps(entry_dict(entry), indent=2))
        return
    click.echo(f"# {entry.name}: {entry.hub_repo}@{entry.revision}; paste into _BUILTIN "
               "in vsslzoo/registry.py (run `vsslzoo verify` on it first)")
    click.echo(entry_source(entry) + ",")


if __name__ == "__main__":
    main()
