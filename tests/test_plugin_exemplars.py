"""In-project exemplars in the plugin (issue 15): the project's other assertions, adapted to
the site's names and grounded in its run, become candidates; a model reads them."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

INVENTORY = '''
class Inventory:
    def __init__(self):
        self.stock = {}

    def add(self, name, qty):
        self.stock[name] = self.stock.get(name, 0) + qty

    def count(self, name):
        return self.stock.get(name, 0)

    def names(self):
        return sorted(self.stock)
'''

EXISTING = '''
from inventory import Inventory


def test_count_after_add():
    inv = Inventory()
    inv.add("a", 2)
    result = inv.count("a")
    assert result == 2


def test_empty_names():
    assert Inventory().names() == []
'''

SITE = '''
from inventory import Inventory


def test_count_after_two_adds():
    shop = Inventory()
    shop.add("b", 1)
    shop.add("b", 4)
    total = shop.count("b")
    assert ...
'''

STUB = '''
import json

import pytest


class Stub:
    """Proposes nothing; writes down the exemplars each site was given."""

    def suggest(self, requests):
        with open("requests.json", "w") as out:
            json.dump({r.qualname: r.exemplars for r in requests}, out)
        return [[] for _ in requests]


@pytest.hookimpl(optionalhook=True)
def pytest_kdassert_suggester(config):
    return Stub()
'''


@pytest.fixture
def project(pytester):
    pytester.makepyfile(inventory=INVENTORY, test_existing=EXISTING, test_site=SITE)
    pytester.makeconftest(STUB)
    return pytester


def _site(project, *args):
    report = project.path / "report.json"
    result = project.runpytest_inprocess("test_site.py", "--suggest-asserts", "-p",
                                         "no:cacheprovider", "--kdassert-no-templates",
                                         f"--kdassert-report={report}", *args)
    result.assert_outcomes(passed=1)
    sites = json.loads(report.read_text())["sites"]
    assert len(sites) == 1
    return sites[0], json.loads((project.path / "requests.json").read_text())


def test_a_sibling_files_assertion_becomes_the_suggestion_with_the_observed_value(project):
    site, requests = _site(project)
    assert site["chosen"] == "assert total == 5"
    assert site["chosen_origin"] == "recalled"
    assert site["chosen_grounded_from"] == "assert total == 2"
    # The model is given the other tests' masked sources and assertions, closest first.
    (masked, assertion), _ = requests["test_count_after_two_adds"]
    assert assertion == "assert result == 2" and "inv.count" in masked


def test_an_exemplar_reading_none_of_the_tests_names_is_left_out(project):
    site, _ = _site(project)
    assert [e["test"] for e in site["exemplars"]] == [
        "test_existing.py::test_count_after_add#0", "test_existing.py::test_empty_names#0"]
    texts = {c["text"] for c in site["candidates"]}
    assert "assert Inventory().names() == []" not in texts
    assert "assert total == 2" in texts


def test_exemplars_are_limited_to_the_option(project):
    site, requests = _site(project, "--kdassert-exemplars=1")
    assert [e["test"] for e in site["exemplars"]] == ["test_existing.py::test_count_after_add#0"]
    assert len(requests["test_count_after_two_adds"]) == 1


def test_exemplars_zero_turns_them_off(project):
    site, requests = _site(project, "--kdassert-exemplars=0")
    assert site["exemplars"] == [] and site["candidates"] == []
    assert site["status"] == "no-candidates"
    assert requests == {"test_count_after_two_adds": []}


SITE_WITH_OWN_CHECK = '''
from inventory import Inventory


def test_count_twice():
    shop = Inventory()
    shop.add("b", 1)
    first = shop.count("b")
    assert first == 1
    shop.add("b", 4)
    total = shop.count("b")
    assert ...
'''


def test_in_project_candidates_are_ranked_by_the_shared_ranker(pytester):
    # The test's own check renamed to its result variable joins the adapted exemplars, and
    # each in-project candidate carries its share of the ranker's softmax over the site.
    pytester.makepyfile(inventory=INVENTORY, test_existing=EXISTING,
                        test_site=SITE_WITH_OWN_CHECK)
    pytester.makeconftest(STUB)
    site, _ = _site(pytester)
    in_project = {c["text"]: c for c in site["candidates"] if c["origin"] == "exemplar"}
    assert "assert total == 1" in in_project  # `assert first == 1`, renamed
    assert "assert total == 2" in in_project  # test_count_after_add's, adapted
    shares = [c["similarity"] for c in in_project.values()]
    assert all(0 < s <= 1 for s in shares) and sum(shares) <= 1 + 1e-9
    assert site["chosen"] == "assert total == 5"
