"""pytest hooks for kdassert. The plugin object is registered only with --suggest-asserts."""

from __future__ import annotations


def pytest_addoption(parser) -> None:
    group = parser.getgroup("kdassert", "suggest missing assertions with a local model")
    group.addoption(
        "--suggest-asserts",
        action="store",
        nargs="?",
        const="diff",
        default=None,
        choices=("diff", "apply", "review"),
        help="suggest assertions for tests that lack them: diff (default), apply or review.",
    )
