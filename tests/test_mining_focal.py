"""Focal-function accuracy on the hand-labelled fake project in tests/fixtures/focal_labels."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from distillation.mining.discover import find_test_files
from distillation.mining.extract import ExtractConfig, extract_file
from distillation.mining.symbols import ProjectIndex
from pytest_kdassert.core.assertions import assertion_kind
from pytest_kdassert.core.source import flatten_statements
from pytest_kdassert.core.testfuncs import find_test_functions

LABELS_ROOT = Path(__file__).parent / "fixtures" / "focal_labels"
_LABEL = re.compile(r"#\s*focal:\s*(\S+)\s*$")


def read_labels(root: Path) -> dict[tuple[str, str, int], str | None]:
    """``(test_file, test_name, k) -> expected focal`` from ``# focal: NAME`` comments."""
    labels = {}
    for rel in find_test_files(root):
        lines = (root / rel).read_text(encoding="utf-8").splitlines()
        for test in find_test_functions(ast.parse("\n".join(lines))):
            stmts = [s for s in flatten_statements(test.node.body) if assertion_kind(s)]
            for k, stmt in enumerate(stmts):
                match = _LABEL.search(lines[stmt.end_lineno - 1])
                if match:
                    value = match.group(1)
                    labels[(rel.as_posix(), test.name, k)] = None if value == "None" else value
    return labels


def focal_accuracy(strategy: str) -> tuple[float, int, list[str]]:
    labels = read_labels(LABELS_ROOT)
    index = ProjectIndex(LABELS_ROOT)
    config = ExtractConfig(focal_strategy=strategy)
    got = {}
    for rel in find_test_files(LABELS_ROOT):
        for example, _ in extract_file(index, "inv", rel, config).examples:
            k = int(example.id.rsplit("#", 1)[1])
            got[(example.test_file, example.test_name, k)] = example.focal_name
    wrong = [f"{key}: expected {want}, got {got.get(key)}" for key, want in labels.items()
             if got.get(key, "<missing>") != want]
    return 1 - len(wrong) / len(labels), len(labels), wrong


def test_label_set_is_large_enough():
    labels = read_labels(LABELS_ROOT)
    assert len(labels) >= 40
    assert sum(v is None for v in labels.values()) >= 2  # some tests have no focal function


def test_dataflow_focal_accuracy_beats_threshold_and_baseline(capsys):
    accuracy, n, wrong = focal_accuracy("dataflow")
    baseline, _, _ = focal_accuracy("last_call")
    with capsys.disabled():
        print(f"\nfocal accuracy on {n} labelled assertions: dataflow {accuracy:.3f}, "
              f"plain last call {baseline:.3f}")
    assert accuracy >= 0.85, "\n".join(wrong)
    assert accuracy > baseline


@pytest.mark.parametrize("key,expected", [
    (("tests/test_stock.py", "StockCase.test_count", 0), "inventory.models.Stock.count"),
    (("tests/test_pricing.py", "test_book_fixture", 0), "inventory.pricing.PriceBook.lookup"),
    (("tests/test_stock.py", "test_aliased_function", 0), "inventory.utils.mathx.clamp"),
])
def test_specific_resolutions(key, expected):
    assert read_labels(LABELS_ROOT)[key] == expected
    index = ProjectIndex(LABELS_ROOT)
    examples = extract_file(index, "inv", Path(key[0]), ExtractConfig()).examples
    found = {(e.test_file, e.test_name, int(e.id.rsplit("#", 1)[1])): e for e, _ in examples}
    assert found[key].focal_name == expected
    assert found[key].focal_source.startswith("def ")
