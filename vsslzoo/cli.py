"""The ``vsslzoo`` command line.

Subcommands import what they need inside their bodies, so ``vsslzoo --help`` and
``vsslzoo list`` never import torch. Every :class:`~vsslzoo.errors.VsslzooError` is
printed as one line (``Error: ...``) with exit status 1, never as a traceback.
"""

from __future__ import annotations

import json

import click

from ._version import __version__
from .errors import VsslzooError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
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
    rows_text = [
        (e.name, e.method, e.architecture, e.data, str(e.embed_dim),
         "available" if e.available else "not published")
        for e in entries
    ]
    widths = [max(len(row[i]) for row in [header, *rows_text]) for i in range(len(header))]
    for row in [header, *rows_text]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _echo_info(info: dict, indent: int = 0) -> None:
    pad = "  " * indent
    for key, value in info.items():
        if isinstance(value, dict):
            click.echo(f"{pad}{key}:")
            _echo_info(value, indent + 1)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            click.echo(f"{pad}{key}:")
            for item in value:
                click.echo(f"{pad}  - " + ", ".join(f"{k}: {v}" for k, v in item.items()))
        else:
            click.echo(f"{pad}{key}: {value}")


@main.command("info")
@click.argument("model")
@click.option("--revision", help="Hub branch, tag or commit (for hf-hub: and zoo names).")
@click.option("--offline", is_flag=True, help="Use the local Hugging Face cache only.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info_command(model: str, revision: str | None, offline: bool, as_json: bool) -> None:
    """Show a model's config, preprocessing, provenance, paper and weights location.

    MODEL is a zoo name, hf-hub:ORG/NAME[@REV] or a model folder.
    """
    from .loading import describe

    info = describe(model, revision=revision, local_files_only=True if offline else None)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        _echo_info(info)


if __name__ == "__main__":
    main()
