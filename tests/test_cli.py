"""The vsslzoo command line: help for every subcommand, list, info, errors, no torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import vsslzoo
from vsslzoo.cli import main


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_version():
    result = _run("--version")
    assert result.exit_code == 0 and vsslzoo.__version__ in result.output


def _all_commands(group, prefix=()):
    yield list(prefix)
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _all_commands(command, (*prefix, name))
        else:
            yield [*prefix, name]


@pytest.mark.parametrize("command", list(_all_commands(main)), ids=" ".join)
def test_every_subcommand_has_help(command):
    result = _run(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output and "--help" in result.output


def test_list_table_and_json():
    result = _run("list")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "METHOD", "BACKBONE", "DATA", "DIM", "WEIGHTS"]
    assert len(lines) == 1 + len(vsslzoo.list_models())
    assert any(line.startswith("ctp-r2plus1d-k400 ") and "r2plus1d_18" in line
               and "not published" in line for line in lines)
    rows = json.loads(_run("list", "--json").output)
    assert [r["name"] for r in rows] == vsslzoo.list_models()
    assert {r["embed_dim"] for r in rows if r["architecture"] == "r3d_50"} == {2048}


def test_list_pattern_and_no_match():
    result = _run("list", "paramcrop-*", "--json")
    assert [r["name"] for r in json.loads(result.output)] == vsslzoo.list_models("paramcrop-*")
    result = _run("list", "zzz")
    assert result.exit_code == 1 and "no zoo model matches 'zzz'" in result.output


def test_list_markdown_is_the_readme_table():
    from vsslzoo.zoo_docs import zoo_table

    assert _run("list", "--markdown").output.strip() == zoo_table()


def test_info_zoo_entry_text_and_json():
    result = _run("info", "ctp-r2plus1d-k400")
    assert result.exit_code == 0
    for text in ("architecture: r2plus1d_18", "midplanes: ctp", "num_frames: 16",
                 "Tracking Patches", "hub_repo: vsslzoo/ctp-r2plus1d-k400",
                 "weights: not published"):
        assert text in result.output
    info = json.loads(_run("info", "ctp-r2plus1d-k400", "--json").output)
    assert info["preprocess"]["crop"] == [112, 112] and info["available"] is False
    assert info["reported_results"]


def test_info_local_folder(tiny_folder):
    info = json.loads(_run("info", str(tiny_folder), "--json").output)
    assert info["source"] == "folder" and info["architecture"] == "r3d_18"
    assert info["weights"].endswith("model.safetensors")


def test_errors_are_one_line_without_traceback(tmp_path):
    result = _run("info", "ctp-r2plus1d-k40")
    assert result.exit_code == 1
    assert result.output.startswith("Error: unknown model 'ctp-r2plus1d-k40'; did you mean")
    assert "Traceback" not in result.output
    result = _run("info", str(tmp_path))
    assert result.exit_code == 1 and "has no config.json" in result.output


def _console_script() -> str:
    script = Path(sys.executable).parent / "vsslzoo"
    if not script.exists():
        pytest.skip("vsslzoo console script not installed beside this Python")
    return str(script)


@pytest.mark.parametrize(
    "args", [["--help"], ["list"], ["list", "--json"], ["info", "ca-r3d18-k400"]]
)
def test_light_commands_do_not_import_torch(args):
    code = (
        "import sys\n"
        "from vsslzoo.cli import main\n"
        f"sys.argv = ['vsslzoo'] + {args!r}\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "heavy = [m for m in ('torch', 'av', 'faiss', 'huggingface_hub') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)


def test_console_script_runs():
    out = subprocess.run([_console_script(), "--version"], capture_output=True, text=True,
                         timeout=60, env={**os.environ})
    assert out.returncode == 0 and vsslzoo.__version__ in out.stdout


@pytest.mark.parametrize("name", ["ctp-r2plus1d-k400", "ca-r3d18-k400"])
def test_info_says_how_to_obtain_once_and_prints_no_unset_field(name):
    from vsslzoo import registry

    result = _run("info", name)
    assert result.exit_code == 0, result.output
    first_line = registry.get_entry(name).obtain.splitlines()[0]
    assert result.output.count(first_line) == 1  # issue 15.14
    assert "weights: not published (see obtain above)" in result.output
    assert "None" not in result.output  # e.g. no "arxiv: None"
