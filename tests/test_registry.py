"""The zoo registry, its model cards and README table (all generated from it)."""

from __future__ import annotations

import pathlib
import re

import pytest

import vsslzoo
from vsslzoo import registry
from vsslzoo.errors import UnknownModelError
from vsslzoo.models import build
from vsslzoo.zoo_docs import card_metadata, expected_documents, parse_front_matter

ROOT = pathlib.Path(__file__).resolve().parents[1]
REQUIRED = [
    "ctp-r3d18-ucf101", "ctp-r3d18-k400", "ctp-r2plus1d-ucf101", "ctp-r2plus1d-k400",
    "paramcrop-s3dg-k400", "paramcrop-r2d3d-k400", "ca-r3d18-ucf101", "ca-r3d18-k400",
    "corpf-r3d50-k400", "corpm-r3d50-ssv2",
]


def test_required_entries_exist():
    assert set(REQUIRED) <= set(vsslzoo.list_models())


@pytest.mark.parametrize("name", REQUIRED)
def test_entry_builds_with_declared_embed_dim(name):
    entry = registry.get_entry(name)
    assert re.fullmatch(r"[a-z]+-[a-z0-9]+-[a-z0-9]+", name)
    assert entry.hub_repo == f"vsslzoo/{name}"
    model = build(entry.architecture, preprocess=entry.preprocess, **entry.model_args)
    assert model.embed_dim == entry.embed_dim
    assert entry.model_config().name == name
    assert entry.provenance.kind in ("converted", "trained", "unpublished")
    assert entry.available == (entry.sha256 is not None and entry.provenance.kind != "unpublished")
    assert entry.obtain  # says how to get weights


@pytest.mark.parametrize("name", REQUIRED)
def test_entry_preprocessing_is_the_papers(name):
    entry = registry.get_entry(name)
    p = entry.preprocess
    assert p.num_frames == 16
    expected_crop = 224 if entry.architecture == "r3d_50" else 112
    assert p.crop == (expected_crop, expected_crop)
    assert p.frame_stride == (1 if entry.data == "ssv2" else 2)


def test_ctp_entries_use_ctp_layout():
    for name in ("ctp-r2plus1d-ucf101", "ctp-r2plus1d-k400"):
        assert registry.get_entry(name).model_args == {"midplanes": "ctp", "bn_eps": 1e-3}


def test_reported_results_present_and_sourced():
    for name in REQUIRED:
        results = registry.get_entry(name).reported_results
        assert results, name
        for row in results:
            assert set(row) == {"task", "dataset", "metric", "value", "source"}
            assert isinstance(row["value"], float) and row["source"]


def test_list_models_patterns():
    assert vsslzoo.list_models("ctp-*") == sorted(n for n in REQUIRED if n.startswith("ctp-"))
    assert vsslzoo.list_models("k400") == sorted(n for n in REQUIRED if "k400" in n)
    assert vsslzoo.list_models("nothing-like-this") == []
    assert vsslzoo.list_models() == sorted(vsslzoo.list_models())


@pytest.mark.parametrize(
    "typo,suggestion",
    [("ctp-r2plus1d", "ctp-r2plus1d-k400"), ("paramcrop-s3d-k400", "paramcrop-s3dg-k400"),
     ("corpf-r3d50-kinetics", "corpf-r3d50-k400")],
)
def test_unknown_name_suggests_close_matches(typo, suggestion):
    with pytest.raises(UnknownModelError) as info:
        registry.get_entry(typo)
    assert repr(suggestion) in str(info.value) and "vsslzoo list" in str(info.value)


def test_register_and_overwrite(restore_registry):
    entry = registry.get_entry("ca-r3d18-k400")
    clone = type(entry)(**{**entry.__dict__, "name": "ca-r3d18-mine"})
    registry.register(clone)
    assert "ca-r3d18-mine" in vsslzoo.list_models()
    with pytest.raises(ValueError, match="already registered"):
        registry.register(clone)
    registry.register(clone, overwrite=True)


@pytest.mark.parametrize("name", REQUIRED)
def test_every_entry_has_a_card_whose_metadata_matches(name):
    path = ROOT / "model_cards" / f"{name}.md"
    assert path.is_file(), f"no model card for {name}"
    text = path.read_text(encoding="utf-8")
    meta = parse_front_matter(text)
    assert meta == card_metadata(registry.get_entry(name))
    assert meta["library_name"] == "vsslzoo" and meta["pipeline_tag"] == "feature-extraction"
    for section in ("## Method", "## Architecture", "## Preprocessing", "## Training recipe",
                    "## Results reported in the paper", "## Intended use", "## Limitations",
                    "## Provenance of the weights"):
        assert section in text, f"{name}: card lacks {section}"
    entry = registry.get_entry(name)
    assert entry.paper["title"] in text
    for row in entry.reported_results:
        assert f"| {row['value']:g} |" in text


def test_no_card_without_entry():
    cards = {p.stem for p in (ROOT / "model_cards").glob("*.md")}
    assert cards == set(vsslzoo.list_models())


def test_generated_documents_are_up_to_date():
    stale = [str(path.relative_to(ROOT)) for path, text in expected_documents(ROOT).items()
             if not path.exists() or path.read_text(encoding="utf-8") != text]
    assert not stale, f"run `python -m vsslzoo.zoo_docs --write`; stale: {stale}"


@pytest.mark.parametrize("name", registry.list_models())
def test_every_training_command_in_the_zoo_parses_with_its_recipe(name):
    """The ``obtain`` command of each entry is a real command line of its recipe: the
    recipe's own parser accepts it, with the entry's architecture and data preset."""
    import importlib
    import shlex

    entry = registry.get_entry(name)
    recipe = registry.METHOD_PAPER[entry.method]
    lines = [line for line in entry.obtain.splitlines()
             if f"vsslzoo.training {recipe} --data" in line]
    assert len(lines) == 1, entry.obtain
    argv = shlex.split(lines[0].split("vsslzoo.training ", 1)[1].split("  #", 1)[0])
    assert argv[0] == recipe
    module = importlib.import_module(f"vsslzoo.training.{recipe}.train")
    args = module.parse_args(argv[1:])
    if entry.embedded:  # the embedded default: its CPU preset, on the rebuildable corpus
        assert (args.arch, args.preset) == (entry.architecture, "default-cpu")
        assert str(args.data).endswith("corpus/train.csv")
        return
    assert args.arch == entry.architecture and args.preset == entry.data
    assert args.out == f"runs/{name}"


@pytest.mark.parametrize("name", registry.list_models())
def test_card_names_the_venue_and_year_once(name):
    """Issue 15.14: the CtP card said "(CVPR 2021 2021)"."""
    from vsslzoo.zoo_docs import render_card

    entry = registry.get_entry(name)
    text = render_card(entry.model_config(), entry)
    year = str(entry.paper["year"])
    line = next(line for line in text.splitlines() if line.startswith("Paper: "))
    assert line.count(year) == 1, line
    if entry.method == "ctp":
        assert "(CVPR 2021)." in line


# -- pinned entries: published weights are a commit + the sha256 of every file loaded --
_EXAMPLE = "pinned-example-k400"  # a published-looking entry, so the check below never runs empty


def _published() -> list[str]:
    entries = [registry.get_entry(name) for name in vsslzoo.list_models()]
    return [e.name for e in entries if e.available and getattr(e, "embedded", None) is None]


@pytest.mark.parametrize("name", vsslzoo.list_models())
def test_every_entry_pins_commits_and_sha256s_well_formed(name):
    assert registry.pinning_problems(registry.get_entry(name)) == []


def test_pinning_problems_name_each_bad_pin():
    from vsslzoo.config import Provenance

    base = registry.get_entry("ctp-r3d18-k400")
    entry = registry.ZooEntry(**{**base.__dict__, "revision": "main", "sha256": "ABC",
                                 "provenance": Provenance(kind="trained")})
    problems = registry.pinning_problems(entry)
    assert "revision 'main' is not a 40-hex commit id" in problems
    assert "sha256 of model.safetensors 'ABC' is not 64 lowercase hex digits" in problems
    assert "published weights without the sha256 of config.json" in problems


class _Stop(Exception):
    pass


@pytest.mark.parametrize("name", [*_published(), _EXAMPLE])
def test_loading_a_published_entry_fetches_exactly_its_pinned_files(name, restore_registry,
                                                                     monkeypatch):
    from vsslzoo import loading
    from vsslzoo.config import Provenance

    if name == _EXAMPLE:
        base = registry.get_entry("ctp-r3d18-k400")
        restore_registry.register(registry.ZooEntry(**{
            **base.__dict__, "name": _EXAMPLE, "revision": "a" * 40, "sha256": "b" * 64,
            "config_sha256": "c" * 64, "onnx_sha256": "d" * 64,
            "provenance": Provenance(kind="trained", method="ctp")}))
    entry = registry.get_entry(name)
    fetched: list[tuple[str | None, tuple[str, ...]]] = []

    def spy(ref, filenames, **kwargs):
        fetched.append((ref.revision, tuple(filenames)))
        raise _Stop

    monkeypatch.setattr(loading, "download_files", spy)
    backends = ["torch"] + (["onnxruntime"] if entry.onnx_sha256 else [])
    for backend in backends:
        with pytest.raises(_Stop):
            vsslzoo.load(name, backend=backend, device="cpu")
    assert {revision for revision, _ in fetched} == {entry.revision}
    used = {file_name for _, names in fetched for file_name in names}
    assert used == set(entry.pinned_files())  # no file loaded unpinned, no pin unused
