"""Tiny mining-schema splits for the training tests (arithmetic on two digits)."""

from __future__ import annotations

import random
from pathlib import Path

from pytest_kdassert.core.records import Example, write_examples

_OPS = [("add", "+"), ("mul", "*"), ("sub", "-")]


def make_examples(count: int, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    examples = []
    for i in range(count):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        op, sym = rng.choice(_OPS)
        value = {"+": a + b, "*": a * b, "-": a - b}[sym]
        examples.append(Example(
            id=f"p:tests/test_m.py::test_{op}_{i}#0", project="p", test_file="tests/test_m.py",
            test_name=f"test_{op}_{i}", focal_name=f"m.{op}",
            focal_source=f"def {op}(a, b):\n    return a {sym} b\n",
            test_source_masked=f"def test_{op}_{i}():\n    x = {op}({a}, {b})\n    <AssertPlaceHolder>\n",
            assertion=f"assert x == {value}",
        ))
    return examples


def write_split(directory: Path, name: str, count: int, seed: int = 0) -> Path:
    path = Path(directory) / f"{name}.jsonl"
    write_examples(path, make_examples(count, seed))
    return path


def write_dataset(directory: Path, train: int = 24, valid: int = 6) -> Path:
    write_split(directory, "train", train, 0)
    write_split(directory, "valid", valid, 1)
    write_split(directory, "test", valid, 2)
    return Path(directory)
