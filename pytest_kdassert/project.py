"""Which installed packages are the project under test.

Code under the rootdir is the project's. But a project installed normally (``pip install .``,
not ``-e``) is imported from site-packages, where every other installed package lives too.
Its top-level packages are found from the project's own metadata: the distribution named in
``pyproject.toml`` (``[project] name``) or ``setup.cfg`` (``[metadata] name``), mapped to its
import names by :func:`importlib.metadata.packages_distributions`, plus the packages that sit
in the rootdir or its ``src/`` (an installed copy keeps their names).
"""

from __future__ import annotations

import configparser
import importlib.metadata
import logging
import re
from pathlib import Path

logger = logging.getLogger(__name__)


def project_packages(rootdir: Path) -> frozenset[str]:
    """Top-level import names of the project rooted at ``rootdir`` (maybe empty)."""
    names = set(_source_packages(rootdir))
    wanted = {_normalize(n) for n in _distribution_names(rootdir)}
    if wanted:
        try:
            mapping = importlib.metadata.packages_distributions()
        except Exception as exc:  # noqa: BLE001 - broken metadata of some other package
            logger.debug("kdassert: installed distributions unreadable: %s", exc)
            mapping = {}
        names.update(top for top, dists in mapping.items()
                     if any(_normalize(d) in wanted for d in dists))
    return frozenset(names)


def _normalize(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _distribution_names(rootdir: Path) -> list[str]:
    found = []
    pyproject = rootdir / "pyproject.toml"
    if pyproject.is_file():
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10: no TOML reader in the standard library
            tomllib = None
        if tomllib is not None:
            try:
                name = tomllib.loads(pyproject.read_text(encoding="utf-8")).get(
                    "project", {}).get("name")
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                name = None
            if isinstance(name, str):
                found.append(name)
    setup_cfg = rootdir / "setup.cfg"
    if setup_cfg.is_file():
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(setup_cfg, encoding="utf-8")
            name = parser.get("metadata", "name", fallback=None)
        except (configparser.Error, OSError, UnicodeDecodeError):
            name = None
        if name:
            found.append(name)
    return found


def _source_packages(rootdir: Path) -> list[str]:
    """Packages and modules in the rootdir or its ``src/`` (never ``tests``)."""
    names = []
    for base in (rootdir, rootdir / "src"):
        try:
            entries = list(base.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.name in ("test", "tests", "testing", "conftest.py", "setup.py"):
                continue
            if entry.is_dir() and (entry / "__init__.py").is_file() and entry.name.isidentifier():
                names.append(entry.name)
            elif base.name == "src" and entry.suffix == ".py" and entry.stem.isidentifier():
                names.append(entry.stem)
    return names
