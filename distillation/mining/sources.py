"""Mining sources: a local directory or ``pypi:NAME==VERSION``, fetched into a cache.

A corpus file lists one spec per line, e.g.
``pypi:pandas==3.1.1 dist=wheel license=BSD-3-Clause`` (``split=test`` holds a project out
for evaluation). Downloads use ``pip download --no-deps`` and are unpacked with safe
extraction (no absolute paths, no ``..``, no links out of the target).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pytest_kdassert.core.errors import SourceError

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("~/.cache/kdassert/sources")
_PYPI_RE = re.compile(r"^pypi:([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")
_DISTS = ("wheel", "sdist")
_COMPLETE = ".kdassert-complete"


@dataclass(frozen=True)
class SourceSpec:
    """One project to mine."""

    project: str
    """Project name used in example ids (directory name or PyPI name)."""
    version: str | None = None
    dist: str | None = None
    """``wheel`` or ``sdist`` for PyPI sources; None for directories."""
    license: str | None = None
    split: str | None = None
    """Forced split (``test`` for held-out projects), or None for the hash-based split."""
    path: str | None = None
    """Local directory, for directory sources."""

    @property
    def is_pypi(self) -> bool:
        return self.path is None


def parse_spec(text: str, *, where: str = "source") -> SourceSpec:
    """Parse ``pypi:NAME==VERSION [dist=..] [license=..] [split=..]`` or a directory path."""
    parts = text.split()
    if not parts:
        raise SourceError(f"{where}: empty source spec")
    head, options = parts[0], _parse_options(parts[1:], where)
    if head.startswith("pypi:"):
        match = _PYPI_RE.match(head)
        if not match:
            raise SourceError(f"{where}: {head!r} is not pypi:NAME==VERSION (pin an exact version)")
        dist = options.get("dist", "sdist")
        if dist not in _DISTS:
            raise SourceError(f"{where}: dist={dist!r}; use dist=wheel or dist=sdist")
        return SourceSpec(match.group(1).lower(), match.group(2), dist,
                          options.get("license"), options.get("split"))
    path = Path(head).expanduser()
    if not path.is_dir():
        raise SourceError(f"{where}: {head!r} is neither a directory nor pypi:NAME==VERSION")
    name = path.resolve().name or "root"
    return SourceSpec(options.get("project", name), None, None, options.get("license"),
                      options.get("split"), str(path))


def _parse_options(tokens: list[str], where: str) -> dict[str, str]:
    options = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or key not in {"dist", "license", "split", "project"}:
            raise SourceError(f"{where}: unknown option {token!r} (use dist=, license=, split=)")
        options[key] = value
    return options


def read_corpus(path: str | os.PathLike) -> list[SourceSpec]:
    """Read a corpus file (``default`` = the bundled pinned corpus); ``#`` starts a comment."""
    if str(path) == "default":
        text = resources.files("distillation").joinpath("corpus/default.txt").read_text("utf-8")
        where = "corpus default"
    else:
        text = _read_corpus_file(Path(path))
        where = str(path)
    specs = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if line:
            specs.append(parse_spec(line, where=f"{where}:{lineno}"))
    if not specs:
        raise SourceError(f"{where}: the corpus lists no sources; add one spec per line, "
                          "e.g. pypi:attrs==25.3.0 or a directory path")
    return specs


def _read_corpus_file(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise SourceError(f"{path}: cannot read corpus file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise SourceError(f"{path}:{line}: corpus files must be UTF-8 (byte "
                          f"{exc.object[exc.start]:#04x} is not); re-encode it, e.g. with "
                          "`iconv -t UTF-8`") from exc


def _cache_key(spec: SourceSpec) -> str:
    return f"{spec.project}-{spec.version}-{spec.dist}"


def fetch(spec: SourceSpec, cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR) -> Path:
    """Return a directory holding the source tree, downloading and unpacking when needed."""
    if not spec.is_pypi:
        return Path(spec.path)
    cache_dir = Path(cache_dir).expanduser()
    target = cache_dir / "unpacked" / _cache_key(spec)
    if (target / _COMPLETE).exists():
        return target
    archive = download(spec, cache_dir / "downloads" / _cache_key(spec))
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    safe_extract(archive, target)
    (target / _COMPLETE).write_text(archive.name, encoding="utf-8")
    return target


def _find_archive(directory: Path) -> Path | None:
    if not directory.is_dir():
        return None
    found = sorted(p for p in directory.iterdir()
                   if p.name.endswith((".whl", ".tar.gz", ".zip", ".tgz", ".tar.bz2")))
    return found[0] if found else None


def download(spec: SourceSpec, directory: Path) -> Path:
    """``pip download`` one pinned distribution into ``directory`` (kept as a cache)."""
    existing = _find_archive(directory)
    if existing is not None:
        return existing
    directory.mkdir(parents=True, exist_ok=True)
    binary = (["--no-binary", spec.project] if spec.dist == "sdist"
              else ["--only-binary", ":all:"])
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-q", "-d", str(directory), *binary, f"{spec.project}=={spec.version}"]
    logger.info("downloading %s==%s (%s)", spec.project, spec.version, spec.dist)
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    archive = _find_archive(directory)
    if archive is None:
        tail = (result.stderr or result.stdout or "").strip().splitlines()[-3:]
        raise SourceError(
            f"pypi:{spec.project}=={spec.version}: pip download failed ({' | '.join(tail)}). "
            "Check the name, version and dist= in the corpus, or your network/index settings."
        )
    return archive


def safe_extract(archive: Path, target: Path) -> None:
    """Unpack a wheel, zip or tarball into ``target``, refusing paths that escape it."""
    root = target.resolve()
    try:
        if archive.name.endswith((".whl", ".zip")):
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    _check_inside(root, name, archive)
                zf.extractall(target)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(target, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise SourceError(f"{archive}: cannot unpack ({exc}); delete it from the cache and retry") \
            from exc


def _check_inside(root: Path, name: str, archive: Path) -> None:
    dest = (root / name).resolve()
    if dest != root and root not in dest.parents:
        raise SourceError(f"{archive}: member {name!r} would be written outside the target; "
                          "refusing to unpack it")
