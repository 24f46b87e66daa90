"""Observed-state templates found at the site (issue 17, item 1): public data attributes and
properties of the focal call's result and of the objects the test acted on, offered as
templates, run only in the sandbox, grounded, guarded against flakiness and ranked by the
model."""

from __future__ import annotations

import json

import pytest

from tests.stubs import NO_CANDIDATES, scoring_suggester

pytestmark = pytest.mark.slow

TABLE = '''
class Table:
    def __init__(self):
        self._rows = []
        self._cache = {}
        self.title = ""
        self.render = lambda: "|".join(map(str, self._rows))

    def add_row(self, *cells):
        self._rows.append(cells)

    @property
    def colcount(self):
        return max((len(row) for row in self._rows), default=0)

    @property
    def rowcount(self):
        return len(self._rows)
'''

TABLE_TEST = '''
from table import Table


def test_add_row():
    t = Table()
    t.title = "Sales"
    t.add_row("a", 1)
    assert ...
'''


def _run(pytester, conftest: str, *args: str, passed: int = 1) -> dict:
    pytester.makeconftest(conftest)
    report = pytester.path / "r.json"
    result = pytester.runpytest_inprocess("--suggest-asserts=apply", "-p", "no:cacheprovider",
                                          "--kdassert-exemplars=0",
                                          f"--kdassert-report={report}", *args)
    result.assert_outcomes(passed=passed)
    return {s["function"]: s for s in json.loads(report.read_text())["sites"]}


def _by_text(site: dict) -> dict:
    return {c["text"]: c for c in site["candidates"]}


def test_a_property_of_the_object_the_test_acted_on_becomes_the_suggestion(pytester):
    pytester.makepyfile(table=TABLE, test_table=TABLE_TEST)
    sites = _run(pytester, scoring_suggester({}, {"assert t.colcount == 0": -1.0}))
    site = sites["test_add_row"]
    assert (site["chosen"], site["chosen_origin"]) == ("assert t.colcount == 2", "observed")
    assert (pytester.path / "test_table.py").read_text().endswith("    assert t.colcount == 2")
    candidates = _by_text(site)
    # Scored by the model at the end of the run, the grounded text with its template's score.
    assert candidates["assert t.colcount == 0"]["score"] == -1.0
    assert candidates["assert t.colcount == 2"]["score"] == -1.0
    assert candidates["assert t.rowcount == 1"]["outcome"] == "passed"
    # The test set the title to this very literal: checking it again says nothing.
    assert candidates["assert t.title == 'Sales'"]["outcome"] == "redundant"
    # Private and callable attributes are never offered.
    assert not [t for t in candidates if "_rows" in t or "_cache" in t or "render" in t]
    # The templates ran before the re-called add_row: they saw the test's own table.
    assert "assert t.rowcount == 2" not in candidates


def test_without_scores_the_focal_results_state_ranks_before_its_inputs(pytester):
    # not test_summary.py: in-process runs share sys.modules with tests/test_summary.py
    pytester.makepyfile(
        table=TABLE + '''

class Summary:
    def __init__(self, table):
        self.rows = table.rowcount
        self.cols = table.colcount


def summarize(table):
    return Summary(table)
''',
        test_summarize_table='''
from table import Table, summarize


def test_summarize():
    table = Table()
    table.add_row(1, 2, 3)
    table.add_row(4, 5, 6)
    summary = summarize(table)
    assert ...
''')
    sites = _run(pytester, NO_CANDIDATES)
    site = sites["test_summarize"]
    assert (site["chosen"], site["chosen_origin"]) == ("assert summary.rows == 2", "observed")
    candidates = _by_text(site)
    assert candidates["assert table.colcount == 3"]["outcome"] == "passed"  # an input's


GADGET = '''
import pathlib


class Gadget:
    reads = 0

    def poke(self):
        pass

    @property
    def boom(self):
        raise RuntimeError("boom")

    @property
    def hang(self):
        while True:
            pass

    @property
    def scribble(self):
        pathlib.Path("scribbled.txt").write_text("x")
        return 1

    @property
    def counted(self):
        Gadget.reads += 1
        return 7
'''


def test_properties_run_only_in_the_sandbox_and_what_they_do_stays_there(pytester):
    pytester.makepyfile(gadget=GADGET, test_gadget='''
from gadget import Gadget


def test_poke():
    g = Gadget()
    g.poke()
    assert ...


def test_no_property_ran_in_this_process():
    assert Gadget.reads == 0
''')
    sites = _run(pytester, NO_CANDIDATES, "--kdassert-timeout=1", passed=2)
    site = sites["test_poke"]
    assert (site["chosen"], site["chosen_origin"]) == ("assert g.counted == 7", "observed")
    outcomes = {t: c["outcome"] for t, c in _by_text(site).items()}
    assert outcomes["assert g.boom == 0"] == "error"
    assert outcomes["assert g.hang == 0"] == "timeout"
    assert outcomes["assert g.scribble == 0"] == "error"
    assert not (pytester.path / "scribbled.txt").exists()


def test_a_value_that_differs_when_the_test_runs_again_is_not_suggested(pytester):
    pytester.makepyfile(job='''
import time
import uuid


class Job:
    def __init__(self):
        self.started = time.time_ns()
        self.token = uuid.uuid4().hex
        self.state = "new"

    def run(self):
        self.state = "done"
''', test_job='''
from job import Job


def test_run():
    job = Job()
    job.run()
    assert ...
''')
    sites = _run(pytester, scoring_suggester({}, {"assert job.started == 0": -0.1,
                                                  "assert job.token == 0": -0.2}))
    site = sites["test_run"]
    assert (site["chosen"], site["chosen_origin"]) == ("assert job.state == 'done'", "observed")
    grounded = {c["grounded_from"]: c for c in site["candidates"] if c["origin"] == "observed"}
    assert grounded["assert job.started == 0"]["outcome"] == "unstable"
    assert grounded["assert job.token == 0"]["outcome"] == "unstable"


def test_without_isolation_no_property_is_read(pytester):
    pytester.makepyfile(table=TABLE, test_table=TABLE_TEST)
    sites = _run(pytester, NO_CANDIDATES, "--kdassert-no-isolation")
    assert not [t for t in _by_text(sites["test_add_row"]) if "colcount" in t]


def test_every_instance_of_a_site_runs_the_templates_its_first_instance_found(pytester):
    pytester.makepyfile(table=TABLE, test_rows='''
import pytest

from table import Table


@pytest.mark.parametrize("n", [1, 2])
def test_rows(n):
    t = Table()
    for i in range(n):
        t.add_row(i, i)
    assert ...
''')
    sites = _run(pytester, scoring_suggester({}, {"assert t.rowcount == 0": -1.0,
                                                  "assert t.colcount == 0": -2.0}), passed=2)
    site = sites["test_rows"]
    assert site["chosen"] == "assert t.colcount == 2"
    candidates = _by_text(site)
    assert candidates["assert t.rowcount == 1"]["outcome"] == "failed"  # 2 rows in the other
    assert "assert t.rowcount == 2" in candidates


def test_a_unittest_method_gets_its_own_style(pytester):
    pytester.makepyfile(table=TABLE, test_case='''
import unittest

from table import Table


class TestTable(unittest.TestCase):
    def test_add_row(self):
        t = Table()
        t.add_row("a", 1)
        assert ...
''')
    sites = _run(pytester, scoring_suggester({}, {"self.assertEqual(t.colcount, 0)": -1.0}))
    site = sites["TestTable.test_add_row"]
    assert (site["chosen"], site["chosen_origin"]) == ("self.assertEqual(t.colcount, 2)",
                                                       "observed")
