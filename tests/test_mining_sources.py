"""Mining sources: spec parsing, the pinned corpus, cached pip downloads, safe unpacking."""

from __future__ import annotations

import io
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from distillation.mining import sources
from distillation.mining.mine import MineConfig, mine
from distillation.mining.sources import fetch, parse_spec, read_corpus, safe_extract
from pytest_kdassert.core.errors import SourceError
from pytest_kdassert.core.records import load_examples


def test_parse_pypi_spec():
    spec = parse_spec("pypi:More-Itertools==11.2.1 dist=sdist license=MIT split=test")
    assert (spec.project, spec.version, spec.dist, spec.license, spec.split) == \
        ("more-itertools", "11.2.1", "sdist", "MIT", "test")
    assert spec.is_pypi


@pytest.mark.parametrize("text,message", [
    ("pypi:pandas", "pin an exact version"),
    ("pypi:pandas==1.0 dist=egg", "dist=wheel or dist=sdist"),
    ("pypi:pandas==1.0 color=red", "unknown option"),
    ("/no/such/dir", "neither a directory"),
])
def test_bad_specs(text, message):
    with pytest.raises(SourceError, match=message):
        parse_spec(text)


def test_default_corpus_is_permissive_with_heldout_projects():
    specs = read_corpus("default")
    names = {s.project for s in specs}
    assert len(specs) >= 100 and len(names) == len(specs)
    assert not names & {"astroid", "pylint", "paramiko", "portion"}
    assert all(s.license and "GPL" not in s.license for s in specs)
    assert all(s.version and s.dist in ("wheel", "sdist") for s in specs)
    held_out = {s.project for s in specs if s.split == "test"}
    assert held_out == {"shapely", "more-itertools", "marshmallow"}
    pandas = next(s for s in specs if s.project == "pandas")
    assert (pandas.version, pandas.dist) == ("3.1.1", "wheel")


def _sdist(path: Path) -> Path:
    """A tiny sdist: tinypkg-1.0/tinypkg/__init__.py and tinypkg-1.0/tests/test_tiny.py."""
    files = {
        "tinypkg-1.0/tinypkg/__init__.py": "def double(x):\n    return 2 * x\n",
        "tinypkg-1.0/tests/test_tiny.py":
            "from tinypkg import double\n\n\ndef test_double():\n    assert double(2) == 4\n",
    }
    with tarfile.open(path, "w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_fetch_downloads_once_and_mines(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        _sdist(dest / "tinypkg-1.0.tar.gz")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(sources.subprocess, "run", fake_run)
    spec = "pypi:tinypkg==1.0 dist=sdist license=MIT"
    root = fetch(parse_spec(spec), tmp_path / "cache")
    assert (root / "tinypkg-1.0" / "tests" / "test_tiny.py").is_file()
    assert fetch(parse_spec(spec), tmp_path / "cache") == root  # cached: no second download
    assert len(calls) == 1
    assert calls[0][-3:] == ["--no-binary", "tinypkg", "tinypkg==1.0"]
    mine(MineConfig(out_dir=str(tmp_path / "out"), sources=[spec], workers=1, split="none",
                    cache_dir=str(tmp_path / "cache")))
    [example] = load_examples(tmp_path / "out" / "examples.jsonl")
    assert example.id == "tinypkg:tinypkg-1.0/tests/test_tiny.py::test_double#0"
    assert example.focal_name == "tinypkg.double"


def test_failed_download_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(sources.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 1, "", "ERROR: No matching distribution found for nope==9"))
    with pytest.raises(SourceError, match="No matching distribution.*Check the name"):
        fetch(parse_spec("pypi:nope==9 dist=wheel"), tmp_path)


def test_safe_extract_refuses_escaping_paths(tmp_path):
    bad_zip = tmp_path / "bad.whl"
    with zipfile.ZipFile(bad_zip, "w") as zf:
        zf.writestr("../evil.py", "x = 1\n")
    with pytest.raises(SourceError, match="outside the target"):
        safe_extract(bad_zip, tmp_path / "out")
    assert not (tmp_path / "evil.py").exists()
    bad_tar = tmp_path / "bad.tar.gz"
    with tarfile.open(bad_tar, "w:gz") as tf:
        info = tarfile.TarInfo("../evil2.py")
        tf.addfile(info, io.BytesIO(b""))
    with pytest.raises(SourceError, match="cannot unpack"):
        safe_extract(bad_tar, tmp_path / "out2")
    assert not (tmp_path / "evil2.py").exists()


def test_failed_source_is_skipped_and_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(sources.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 1, "", "ERROR: No matching distribution found"))
    root = tmp_path / "proj"
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "test_a.py").write_text("def test_a():\n    assert 1 + 1 == 2\n")
    stats = mine(MineConfig(out_dir=str(tmp_path / "out"), workers=1, split="none",
                            sources=[str(root), "pypi:nope==1.0"], cache_dir=str(tmp_path / "c")))
    assert list(stats["failed_sources"]) == ["nope"]
    assert stats["num_projects"] == 1 and stats["examples"] == 1
