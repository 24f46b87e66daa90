"""The bundled default student: present, within its size cap, and doing README's main job."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from distillation.bundle import MAX_BYTES
from distillation.cli import main
from pytest_kdassert.core.loading import default_model_dir

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "shop"

pytestmark = pytest.mark.skipif(not (default_model_dir() / "model_card.json").exists(),
                                reason="no bundled model in this checkout")


def test_bundled_model_has_weights_tokenizer_and_a_card_within_the_cap():
    directory = default_model_dir()
    names = {p.name for p in directory.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "kdassert_format.json",
            "model_card.json"} <= names
    assert sum(p.stat().st_size for p in directory.iterdir()) <= MAX_BYTES
    card = json.loads((directory / "model_card.json").read_text())
    assert {"alpha", "temperature"} <= set(card["training"])
    assert 0.0 <= card["benchmark"]["metrics"]["exact_match"] <= 1.0


@pytest.mark.slow
def test_main_job_suggests_verified_assertions_on_the_example_project(pytester):
    shutil.copytree(EXAMPLES, pytester.path, dirs_exist_ok=True)
    report = pytester.path / "report.json"
    # a subprocess: an in-process run would unload the torch modules it imported afterwards
    result = pytester.runpytest_subprocess("--suggest-asserts=apply", "--kdassert-threads=1",
                                           f"--kdassert-report={report}")
    result.assert_outcomes(passed=12)
    sites = {s["function"]: s for s in json.loads(report.read_text())["sites"]}
    assert json.loads(report.read_text())["settings"]["model"] == "default"
    # the parametrized test's value differs between EUR and USD: nothing stable to pin down
    assert sites["test_format_price"]["status"] == "no-verified-candidate"
    suggested = [s for s in sites.values() if s["status"] == "suggested"]
    assert len(suggested) == 3
    written = (pytester.path / "tests" / "test_suggest_me.py").read_text()
    for site in suggested:
        assert site["chosen"] in written
    pytester.runpytest_subprocess("-p", "no:kdassert").assert_outcomes(passed=12)


@pytest.mark.slow
def test_bench_accepts_the_default_model(tmp_path):
    data = tmp_path / "test.jsonl"
    record = {
        "id": "p:t.py::test_a#1", "project": "p", "test_file": "t.py", "test_name": "test_a",
        "focal_name": "f", "focal_source": "def f(x):\n    return x + 1",
        "test_source_masked": "def test_a():\n    y = f(1)\n    <AssertPlaceHolder>",
        "assertion": "assert y == 2"}
    data.write_text(json.dumps(record) + "\n")
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", "--data", str(data), "--model", "default",
                                       "--out", str(out), "--latency-examples", "1",
                                       "--no-memory"])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    assert [r["name"] for r in rows] == ["default"]
    assert rows[0]["size"]["parameters"] == json.loads(
        (default_model_dir() / "model_card.json").read_text())["parameters"]
