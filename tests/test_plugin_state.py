"""Observed-state templates (issue 17, item 1): a suggestion where the value is not in a
variable: the value of a discarded final call, the size of an object the test acted on."""

from __future__ import annotations

import json

import pytest

from tests.stubs import NO_CANDIDATES

pytestmark = pytest.mark.slow

BAG = '''
class Bag:
    def __init__(self):
        self.items = []

    def put(self, item):
        self.items.append(item)

    def total(self):
        return sum(self.items)

    def __len__(self):
        return len(self.items)
'''

TESTS = '''
from bag import Bag


def test_total_of_a_bag():
    bag = Bag()
    bag.put(3)
    bag.put(4)
    bag.total()


def test_size_of_a_bag():
    bag = Bag()
    bag.put(1)
    bag.put(2)
    assert ...
'''



def test_discarded_final_call_and_object_size_become_suggestions(pytester):
    pytester.makepyfile(bag=BAG, test_bag=TESTS)
    pytester.makeconftest(NO_CANDIDATES)
    report = pytester.path / "r.json"
    result = pytester.runpytest_inprocess("--suggest-asserts", "-p", "no:cacheprovider",
                                          "--kdassert-exemplars=0", f"--kdassert-report={report}")
    result.assert_outcomes(passed=2)
    chosen = {s["function"]: (s["chosen"], s["chosen_origin"])
              for s in json.loads(report.read_text())["sites"]}
    assert chosen == {"test_total_of_a_bag": ("assert bag.total() == 7", "observed"),
                      "test_size_of_a_bag": ("assert len(bag) == 2", "observed")}
    sites = {s["function"]: s for s in json.loads(report.read_text())["sites"]}
    put = {c["text"]: c for c in sites["test_size_of_a_bag"]["candidates"]}
    assert put["assert bag.put(2) is None"]["outcome"] == "redundant"  # a procedure's None
    # The re-called put() ran in the sandbox: the test's own bag still holds two items.
    assert "assert len(bag) == 3" not in put


def test_a_failed_check_says_why_its_value_was_not_filled_in(pytester):
    pytester.makepyfile(
        conf="class Config(dict):\n    pass\n\n\ndef load():\n    return Config(a=1)\n",
        test_conf="from conf import load\n\n\ndef test_load():\n    cfg = load()\n"
                  "    text = 'x' * 300\n")
    pytester.makeconftest(NO_CANDIDATES)
    report = pytester.path / "r.json"
    result = pytester.runpytest_inprocess("--suggest-asserts", "-p", "no:cacheprovider",
                                          "--kdassert-exemplars=0", f"--kdassert-report={report}")
    result.assert_outcomes(passed=1)
    site, = json.loads(report.read_text())["sites"]
    details = {c["text"]: c["detail"] for c in site["candidates"]}
    assert details["assert cfg == 0"].endswith(
        "; value not filled in: a Config has no literal form")
    assert details["assert text == 0"].endswith(
        "; value not filled in: its literal is 302 characters (over 240)")
