"""A real (non-editable) build: training/ and export/ install as vsslzoo.training/.export."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_maps_training_and_export_into_the_package(tmp_path):
    pytest.importorskip("setuptools", minversion="77", reason="building needs setuptools>=77")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("vsslzoo", "training", "export"):
        shutil.copytree(ROOT / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(wheels), str(source)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = wheels.glob("vsslzoo-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "vsslzoo/training/__init__.py" in names
    assert "vsslzoo/export/__init__.py" in names
    expected = {f"vsslzoo/{p.relative_to(ROOT / 'vsslzoo').as_posix()}"
                for p in (ROOT / "vsslzoo").rglob("*.py")}
    expected |= {f"vsslzoo/{folder}/{p.relative_to(ROOT / folder).as_posix()}"
                 for folder in ("training", "export") for p in (ROOT / folder).rglob("*.py")}
    expected |= {f"vsslzoo/default_model/{name}"  # the embedded default model
                 for name in ("config.json", "model.safetensors", "model.onnx", "README.md")}
    missing = sorted(expected - set(names))
    assert not missing, f"files missing from the wheel (pyproject packages?): {missing}"
    top_level = {n.split("/")[0] for n in names}
    assert top_level <= {"vsslzoo", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1]
                         + ".dist-info"}, top_level
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "vsslzoo = vsslzoo.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
         str(site), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import vsslzoo, vsslzoo.training, vsslzoo.export, importlib.util, sys\n"
        f"assert vsslzoo.__file__.startswith({str(site)!r}), vsslzoo.__file__\n"
        "assert importlib.util.find_spec('training') is None\n"
        "assert importlib.util.find_spec('export') is None\n"
        "from vsslzoo import registry\n"
        "entry = registry.get_entry(vsslzoo.DEFAULT_MODEL)\n"
        "assert entry.embedded_folder().is_dir(), entry.embedded_folder()\n"
        f"assert str(entry.embedded_folder()).startswith({str(site)!r})\n"
        "print(len(vsslzoo.list_models()))\n"
    )
    # -S: no site-packages, so an editable install of the checkout cannot shadow the wheel;
    # importing vsslzoo and listing the zoo needs nothing outside the package.
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=elsewhere, capture_output=True,
                         text=True, timeout=120,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 10


def test_the_repository_points_at_no_file_outside_it():
    """Docstrings cite the papers (section, equation, table) and public code (repository
    and path), never files of a development machine (issue 15.15). The patterns are
    split so that this file does not match itself."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs the git checkout")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    patterns = ("REFERENCE" + ".md", "/wo" + "rk/", "sha" + "red/")
    offenders = [
        f"{name}:{number}: {line.strip()}"
        for name in listed if name.endswith((".py", ".md")) and (ROOT / name).is_file()
        for number, line in enumerate(
            (ROOT / name).read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if any(pattern in line for pattern in patterns)
    ]
    assert not offenders, "\n".join(offenders)
