"""The matrix numbers in README.md and docs/ are what scripts/generate_docs.py makes of the committed results."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("generate_docs", ROOT / "scripts" / "generate_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_texts_are_what_the_generator_makes_of_the_committed_results(generator):
    """README.md, docs/matrix.md, docs/matrix-full.md and docs/versions.md: byte for byte."""
    stale = [name for name, text in generator.files().items() if (ROOT / name).read_text(encoding="utf-8") != text]
    assert not stale, f"stale generated text in {stale}: run `python scripts/generate_docs.py`"


def test_a_doctored_number_is_caught(generator):
    """Editing a generated number by hand (a matrix count, a benchmark ratio) is undone by the generator."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    fresh_row = next(line for line in readme.splitlines() if line.startswith("| fresh process |"))
    doctored = readme.replace(fresh_row, re.sub(r"\d+/", "1/", fresh_row, count=1))
    safe = re.search(r"<!-- gen:bench-safe -->([^<]+)<", doctored)
    assert safe is not None
    doctored = doctored.replace(safe.group(0), "<!-- gen:bench-safe -->1.0-1.1x<")
    assert doctored != readme
    values = generator.all_blocks(generator.load(generator.MATRIX), generator.load(generator.VERSIONS),
                                  generator.bench_runs())
    assert generator.fill(doctored, values, "README.md") == readme


def test_the_results_are_a_real_run_and_the_pictures_exist(generator):
    """The committed matrix holds every catalogue case in the fresh mode, and the pictures it names exist."""
    from anypickle.lab.catalogue import all_cases

    matrix = generator.load(generator.MATRIX)
    fresh = {c["case"] for c in matrix["cells"] if c["mode"] == "fresh"}
    assert fresh == {case.name for case in all_cases()}
    versions = generator.load(generator.VERSIONS)
    assert {m["library"] for m in versions["modes"]} == {"cloudpickle", "dill"}
    for name, text in generator.files().items():
        for picture in re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text):
            assert (ROOT / name).parent.joinpath(picture).exists(), f"{name} shows a missing {picture}"
    assert json.loads(json.dumps(matrix))["schema"] == 1
