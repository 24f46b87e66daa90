"""What a run keeps in memory and for how long: parsed sources, run caches, the collector."""

from __future__ import annotations

import gc
import linecache
import textwrap

import pytest

from pytest_kdassert import loaded_source
from pytest_kdassert.core.memo import clear_run_caches, run_cache
from pytest_kdassert.gcpause import gc_paused, without_gc

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _fresh_parses():
    loaded_source.forget()
    yield
    loaded_source.forget()


def _module_file(tmp_path, source: str):
    path = tmp_path / "mod_loaded.py"
    path.write_text(textwrap.dedent(source))
    linecache.checkcache(str(path))
    return str(path)


def test_definitions_are_found_by_name_and_first_line(tmp_path):
    filename = _module_file(tmp_path, """\
        import functools


        @functools.cache
        def cached(x):
            return x


        class Box:
            def method(self):
                def inner():
                    return 1
                return inner
        """)
    namespace: dict = {}
    exec(compile((tmp_path / "mod_loaded.py").read_text(), filename, "exec"), namespace)  # noqa: S102 - our own file
    box = namespace["Box"]
    inner = box().method()
    assert loaded_source.function_definition(inner.__code__).name == "inner"
    assert loaded_source.function_definition(box.method.__code__).name == "method"
    wrapped = namespace["cached"].__wrapped__  # its code's first line is the decorator's
    assert wrapped.__code__.co_firstlineno == 4
    assert loaded_source.function_definition(wrapped.__code__).lineno == 5
    assert loaded_source.definition_at(filename, "Box", 9).name == "Box"
    assert loaded_source.definition_at(filename, "Box", 10) is None
    assert loaded_source.definition_at(filename + ".missing", "Box", 9) is None


def test_a_file_is_parsed_once_and_again_when_linecache_reloads_it(tmp_path, monkeypatch):
    filename = _module_file(tmp_path, "def f():\n    return 1\n")
    parses = []
    real = loaded_source._parse
    monkeypatch.setattr(loaded_source, "_parse", lambda lines: parses.append(1) or real(lines))
    first = loaded_source.parsed_file(filename)
    assert loaded_source.parsed_file(filename) is first and len(parses) == 1
    (tmp_path / "mod_loaded.py").write_text("x = 1\n\n\ndef g():\n    return 2\n")
    linecache.checkcache(filename)  # the file changed: linecache drops its lines
    assert loaded_source.definition_at(filename, "g", 4).name == "g"
    assert loaded_source.definition_at(filename, "f", 1) is None
    assert len(parses) == 2


def test_parse_text_shares_the_tree_only_for_the_same_text(tmp_path):
    source = "def f():\n    return 1\n"
    filename = _module_file(tmp_path, source)
    shared = loaded_source.parse_text(filename, source)
    assert shared is loaded_source.parsed_file(filename).tree
    other = loaded_source.parse_text(filename, source + "x = 2\n")
    assert other is not shared and len(other.body) == 2
    assert loaded_source.parse_text("", "y = 3\n").body[0].targets[0].id == "y"
    broken = _module_file(tmp_path, "def (:\n")
    assert loaded_source.parsed_file(broken).tree is None
    with pytest.raises(SyntaxError):
        loaded_source.parse_text(broken, "def (:\n")


def test_the_collector_is_paused_and_the_users_setting_kept():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the user disabled it: it stays so
    finally:
        gc.enable()

    @without_gc
    def fails():
        assert not gc.isenabled()
        raise KeyError("x")

    with pytest.raises(KeyError):
        fails()
    assert gc.isenabled()


def test_run_caches_are_cleared_together():
    calls = []

    @run_cache(maxsize=8)
    def double(x):
        calls.append(x)
        return 2 * x

    assert [double(2), double(2)] == [4, 4] and calls == [2]
    clear_run_caches()
    assert double(2) == 4 and calls == [2, 2]


def test_a_run_leaves_no_sites_or_parsed_files_behind(pytester):
    """After ``--suggest-asserts`` the session holds nothing pytest's last garbage
    collections would walk again: sites, changes, parsed files."""
    pytester.makepyfile(focal_mem="def twice(x):\n    return 2 * x\n")
    pytester.makepyfile(test_mem="from focal_mem import twice\n\n\ndef test_t():\n"
                                 "    result = twice(2)\n    assert ...\n")
    pytester.makeconftest("""
        import pytest

        class Fixed:
            def suggest(self, requests):
                return [["assert result == 3"] for _ in requests]

        @pytest.hookimpl(optionalhook=True)
        def pytest_kdassert_suggester(config):
            return Fixed()
        """)
    seen = {}

    class Spy:
        @pytest.hookimpl(trylast=True)
        def pytest_terminal_summary(self, config):
            hooks = config.pluginmanager.get_plugin("kdassert-session")
            seen["chosen"] = [s.chosen.text for s in hooks.session.states.values()]

        @pytest.hookimpl(trylast=True)
        def pytest_unconfigure(self, config):
            hooks = config.pluginmanager.get_plugin("kdassert-session")
            seen["states"] = dict(hooks.session.states)
            seen["changes"] = list(hooks.session.changeset.changes)
            seen["files"] = dict(loaded_source._files)
            seen["texts"] = len(hooks.session.runner._trees) + len(hooks.session.verifier._compiled)

    result = pytester.inline_run("--suggest-asserts", "-p", "no:cacheprovider", plugins=[Spy()])
    result.assertoutcome(passed=1)
    assert seen == {"chosen": ["assert result == 4"], "states": {}, "changes": [], "files": {},
                    "texts": 0}
