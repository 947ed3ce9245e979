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


def _speed_doc(import_ratio: float, slope: float) -> dict:
    """A run of the issue-16 suites as save_speed keeps it: target rows and one family's scaling curves."""
    curves = {b: {str(n): {"dumps": n * k * 1e-7, "loads": n * k * 1e-7, "size": 10 * n} for n in (10, 100, 1000)}
              for b, k in (("pickle", 1.0), ("anypickle", 1.2))}
    return {"versions": {"python": "3.11.7", "cloudpickle": "3.1.3", "dill": "0.4.1", "numpy": "2.4.6"},
            "benchmarks": [
                {"name": "test_import_time", "extra_info": {"targets": [
                    {"target": "import anypickle at most 1.3x import cloudpickle", "case": "fresh interpreter",
                     "measure": "import anypickle/cloudpickle", "value": import_ratio, "limit": 1.3}]}},
                {"name": "test_scaling[ints]", "extra_info": {
                    "scaling": {"family": "ints", "sizes": [10, 100, 1000], "curves": curves},
                    "targets": [
                        {"target": "(info) scaling: auto / best other backend, worst over the ladder", "case": "ints",
                         "measure": "dumps auto/best, n=10..1000", "value": 1.2, "limit": None, "info": True},
                        {"target": "(info) scaling: auto / best other backend at the largest size", "case": "ints",
                         "measure": "dumps auto/best, n=1000", "value": 1.2, "limit": None, "info": True},
                        {"target": "scaling: auto never superlinear (log-log slope <= best's + 0.15)", "case": "ints",
                         "measure": "dumps slope(auto) - slope(best), n=10..1000", "value": slope, "limit": 0.15,
                         "unit": ""}]}},
            ]}


def test_issue16_blocks_say_not_measured_without_committed_runs(generator):
    """No speed-*.json.gz committed: the blocks say so (no noisy numbers, no picture named)."""
    blocks = generator.speed_blocks([])
    assert blocks["speed-setup"] == "not measured yet"
    assert "Not measured yet" in blocks["speed-table"] and "Not measured yet" in blocks["scaling"]
    assert ".png" not in blocks["scaling"]


def test_issue16_blocks_from_runs_take_the_median_and_judge_each_target(generator):
    """Three runs: each row is the median of its per-run values, judged against its limit; the plot is named."""
    docs = [_speed_doc(1.1, 0.05), _speed_doc(2.9, 0.30), _speed_doc(3.0, 0.40)]
    blocks = generator.speed_blocks(docs)
    table = blocks["speed-table"]
    assert "| import anypickle at most 1.3x import cloudpickle | fresh interpreter | import anypickle/cloudpickle " \
           "| 2.90x | <= 1.30x | MISS |" in table
    assert "| 0.30 | <= 0.15 | MISS |" in table  # a slope difference carries no "x"
    assert "median over 3 runs" in blocks["speed-setup"]
    assert "MISSED" in blocks["scaling"] and "benchmarks-scaling.png" in blocks["scaling"]
    one = generator.speed_blocks([_speed_doc(1.1, 0.05)])
    assert "| 1.10x | <= 1.30x | PASS |" in one["speed-table"] and "never superlinear" in one["scaling"]
