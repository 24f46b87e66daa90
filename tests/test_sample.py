"""`kdassert sample`: seeded subsets drawn from every project."""

import json

import pytest
from click.testing import CliRunner

from distillation.cli import main
from distillation.sample import SampleConfig, sample_dataset, sample_examples
from pytest_kdassert.core.errors import ConfigError
from pytest_kdassert.core.records import load_examples


def _write_split(path, projects, per_project):
    rows = []
    for project in projects:
        for i in range(per_project):
            rows.append({"id": f"{project}:t.py::test_{i}#0", "project": project, "test_file": "t.py",
                         "test_name": f"test_{i}", "focal_name": None, "focal_source": "",
                         "test_source_masked": "def test():\n    <AssertPlaceHolder>\n",
                         "assertion": f"assert f({i}) == {i}"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_sample_keeps_order_and_is_seeded():
    items = list(range(100))
    first = sample_examples(items, 10, seed=3)
    assert first == sorted(first)
    assert len(set(first)) == 10
    assert sample_examples(items, 10, seed=3) == first
    assert sample_examples(items, 10, seed=4) != first
    assert sample_examples(items, None, seed=0) == items
    assert sample_examples(items, 500, seed=0) == items


def test_sample_dataset_draws_from_every_project(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _write_split(data / "train.jsonl", ["a", "b", "c", "d"], 50)
    _write_split(data / "valid.jsonl", ["e"], 5)
    written = sample_dataset(SampleConfig(str(data), str(tmp_path / "out"), {"train": 40}, seed=0))
    assert written == {"train": 40, "valid": 5}
    projects = {e.project for e in load_examples(tmp_path / "out" / "train.jsonl")}
    assert projects == {"a", "b", "c", "d"}  # the first 40 rows would all be project "a"


def test_sample_refuses_to_overwrite_its_source(tmp_path):
    with pytest.raises(ConfigError, match="new directory"):
        SampleConfig(str(tmp_path), str(tmp_path), {"train": 1})
    with pytest.raises(ConfigError, match=">= 1"):
        SampleConfig(str(tmp_path), str(tmp_path / "o"), {"train": 0})


def test_sample_command(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _write_split(data / "train.jsonl", ["a", "b"], 10)
    result = CliRunner().invoke(main, ["sample", str(data), "-o", str(tmp_path / "o"), "--train", "5"])
    assert result.exit_code == 0, result.output
    assert "train: 5 examples" in result.output
    assert len(load_examples(tmp_path / "o" / "train.jsonl")) == 5
