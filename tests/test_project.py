"""The project under test is found wherever it is installed (issue 17, item 4)."""

from __future__ import annotations

import json

import pytest

from pytest_kdassert.project import project_packages

PRICES = "def net(price, tax):\n    return price + tax\n"


def _install(site_packages, name="shopkit", dist="shop-kit"):
    """A non-editable install: the package and its metadata in a site-packages directory."""
    (site_packages / name).mkdir(parents=True)
    (site_packages / name / "__init__.py").write_text(PRICES)
    info = site_packages / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "top_level.txt").write_text(f"{name}\n")


def test_project_packages_come_from_metadata_and_source_dirs(tmp_path, monkeypatch):
    site_packages = tmp_path / "env" / "site-packages"
    _install(site_packages)
    monkeypatch.syspath_prepend(str(site_packages))
    root = tmp_path / "repo"
    (root / "src" / "helpers").mkdir(parents=True)
    (root / "src" / "helpers" / "__init__.py").write_text("")
    (root / "tests").mkdir()
    (root / "tests" / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text('[project]\nname = "Shop_Kit"\nversion = "1"\n')
    assert project_packages(root) == {"shopkit", "helpers"}
    (root / "pyproject.toml").write_text("not toml = = =")
    (root / "setup.cfg").write_text("[metadata]\nname = shop.kit\n")
    assert project_packages(root) == {"shopkit", "helpers"}


def test_an_unrelated_installed_package_is_not_the_project(tmp_path, monkeypatch):
    site_packages = tmp_path / "site-packages"
    _install(site_packages, name="otherlib", dist="otherlib")
    monkeypatch.syspath_prepend(str(site_packages))
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "shop-kit"\n')
    assert project_packages(tmp_path) == frozenset()


@pytest.mark.slow
def test_focal_is_found_in_a_normally_installed_project(pytester):
    site_packages = pytester.path / "venv" / "site-packages"
    _install(site_packages)
    pytester.syspathinsert(site_packages)
    pytester.makefile(".toml", pyproject='[project]\nname = "shop-kit"\n')
    pytester.makepyfile(test_net="from shopkit import net\n\n\n"
                                 "def test_net():\n    total = net(10, 2)\n")
    pytester.makeconftest(
        "import pytest\n\n\nclass Stub:\n    def suggest(self, requests):\n"
        "        return [[] for _ in requests]\n\n\n@pytest.hookimpl(optionalhook=True)\n"
        "def pytest_kdassert_suggester(config):\n    return Stub()\n")
    report = pytester.path / "r.json"
    result = pytester.runpytest_inprocess("--suggest-asserts", "-p", "no:cacheprovider",
                                          f"--kdassert-report={report}")
    result.assert_outcomes(passed=1)
    site, = json.loads(report.read_text())["sites"]
    assert site["focal"] == "net"
    assert site["chosen"] == "assert total == 12"
