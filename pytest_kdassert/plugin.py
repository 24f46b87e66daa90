"""pytest hooks for kdassert. The plugin object is registered only with --suggest-asserts.

Nothing heavy is imported here: a plain ``pytest`` run pays for this module only.
"""

from __future__ import annotations

import pytest

from pytest_kdassert.config import MODES

SESSION_KEY = pytest.StashKey[object]()
"""``config.stash[SESSION_KEY]``: the active :class:`~pytest_kdassert.hooks.KdassertHooks`."""


def pytest_addhooks(pluginmanager) -> None:
    from pytest_kdassert import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_load_initial_conftests(early_config, parser, args) -> None:
    """Read ``--suggest-asserts tests/`` as diff mode on ``tests/``.

    The option's value is optional, so argparse would take the path that follows as the mode.
    pytest calls this hook (for installed plugins) before its final parse of ``args``, which it
    passes by reference, so naming the default mode here leaves the path a path.
    """
    for i, arg in enumerate(args[:-1]):
        following = args[i + 1]
        if arg == "--suggest-asserts" and following not in MODES and not following.startswith("-"):
            args[i] = "--suggest-asserts=diff"


def pytest_addoption(parser) -> None:
    group = parser.getgroup("kdassert", "suggest missing assertions with a local model")
    group.addoption(
        "--suggest-asserts", action="store", nargs="?", const="diff", default=None,
        metavar="MODE",
        help="suggest assertions for tests with `assert ...` or no assertion: diff (default, "
             "prints patches), apply (writes files) or review (asks each; needs -s).",
    )
    group.addoption("--kdassert-model", default=None, metavar="DIR",
                    help="model directory, or `default` for the bundled student "
                         "(ini: kdassert_model).")
    group.addoption("--kdassert-beams", type=int, default=None, metavar="N",
                    help="beam width = candidates per site (default 5; ini: kdassert_beams).")
    group.addoption("--kdassert-threads", type=int, default=0, metavar="N",
                    help="CPU threads for generation (default: torch's choice); use 1 on a "
                         "busy machine.")
    group.addoption("--kdassert-all", action="store_true", default=False,
                    help="also suggest for tests that already assert something.")
    group.addoption("--kdassert-no-verify", action="store_true", default=False,
                    help="keep the model's top candidate without running it in the test.")
    group.addoption("--kdassert-ground", dest="kdassert_ground", action="store_true",
                    default=True,
                    help="fill the candidates' expected values from the test run (default).")
    group.addoption("--kdassert-no-ground", dest="kdassert_ground", action="store_false",
                    help="keep the model's literals as they are.")
    group.addoption("--kdassert-no-templates", action="store_true", default=False,
                    help="don't add `assert <variable> == <observed value>` candidates for the "
                         "variables a test assigned (they need grounding).")
    group.addoption("--kdassert-timeout", type=float, default=2.0, metavar="SECONDS",
                    help="time limit for the candidates of one site (default 2).")
    group.addoption("--kdassert-no-isolation", action="store_true", default=False,
                    help="run allow-listed candidates in the test's own process instead of "
                         "a forked child (no time limit; the flakiness re-run runs there too).")
    group.addoption("--kdassert-exemplars", type=int, default=3, metavar="N",
                    help="how many similar assertions of the project's other tests to adapt "
                         "into candidates per site (default 3; 0: none).")
    group.addoption("--kdassert-report", default=None, metavar="FILE.json",
                    help="write every site, candidate and verification outcome as JSON.")
    parser.addini("kdassert_model", "model directory or `default` for --suggest-asserts",
                  default="default")
    parser.addini("kdassert_beams", "beam width for --suggest-asserts", default="5")


def pytest_configure(config) -> None:
    mode = config.getoption("suggest_asserts", None)
    if not mode or hasattr(config, "workerinput"):
        return  # off, or an xdist worker (the controller explains why)
    settings = _settings(config, mode)
    from pytest_kdassert.hooks import KdassertHooks, XdistNotice

    if _xdist_active(config):
        config.pluginmanager.register(XdistNotice(), "kdassert-xdist-notice")
        return

    hooks = KdassertHooks(config, settings)
    config.stash[SESSION_KEY] = hooks
    config.pluginmanager.register(hooks, "kdassert-session")


def _settings(config, mode):
    from pytest_kdassert.config import SuggestConfig
    from pytest_kdassert.core.errors import ConfigError
    from pytest_kdassert.report import check_report_path

    beams = config.getoption("kdassert_beams")
    if beams is None:
        beams = config.getini("kdassert_beams")
    try:
        check_report_path(config.getoption("kdassert_report"))
        return SuggestConfig(
            mode=mode,
            model=config.getoption("kdassert_model") or config.getini("kdassert_model"),
            num_beams=int(beams),
            threads=config.getoption("kdassert_threads"),
            all_tests=config.getoption("kdassert_all"),
            verify=not config.getoption("kdassert_no_verify"),
            ground=config.getoption("kdassert_ground"),
            templates=not config.getoption("kdassert_no_templates"),
            exemplars=config.getoption("kdassert_exemplars"),
            report=config.getoption("kdassert_report"),
            isolation=not config.getoption("kdassert_no_isolation"),
            timeout=config.getoption("kdassert_timeout"),
        )
    except (ConfigError, ValueError) as exc:
        raise pytest.UsageError(f"kdassert: {exc}") from exc


def _xdist_active(config) -> bool:
    return bool(config.pluginmanager.hasplugin("xdist") and config.getoption("numprocesses", None))

