"""Progress in a log: lines instead of a bar, so a background run says how far it is."""

from __future__ import annotations

import io
import re

import pytest

from distillation import progress as progress_module
from distillation.progress import LineProgress, progress


@pytest.fixture(autouse=True)
def no_quiet_start(monkeypatch):
    monkeypatch.setattr(progress_module, "QUIET_SECONDS", 0.0)


def test_line_progress_prints_a_line_per_tenth_and_one_at_the_end():
    stream = io.StringIO()
    with LineProgress(25, "tokenising", "examples", stream=stream) as bar:
        for _ in range(25):
            bar.update(1)
    lines = stream.getvalue().splitlines()
    assert [int(re.match(r"tokenising: (\d+) of 25 examples \(\d+/s\)$", line).group(1)) for line in lines] \
        == [3, 6, 9, 12, 15, 18, 21, 24, 25]


def test_line_progress_with_large_updates_prints_once_per_update_that_crosses_a_tenth():
    stream = io.StringIO()
    bar = LineProgress(100, "bench", stream=stream)
    for n in (5, 3, 40, 2, 50):
        bar.update(n)
    assert [line.split(":")[1].split(" of")[0].strip() for line in stream.getvalue().splitlines()] \
        == ["48", "50", "100"]


def test_progress_outside_a_terminal_is_lines_on_stderr(capsys):
    bar = progress(4, "mining", unit="file")
    assert isinstance(bar, LineProgress) and bar.disable
    bar.update(4)
    assert re.fullmatch(r"mining: 4 of 4 files \(\d+/s\)\n", capsys.readouterr().err)


def test_quick_work_prints_nothing(monkeypatch):
    monkeypatch.setattr(progress_module, "QUIET_SECONDS", 60.0)
    stream = io.StringIO()
    bar = LineProgress(10, "tokenising", stream=stream)
    bar.update(10)
    assert stream.getvalue() == "" and bar.n == 10
