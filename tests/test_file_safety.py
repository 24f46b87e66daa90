"""Files are never damaged (issue 14, item 4): encodings, links, read-only files, signals,
assertions a test already has, and a report path checked before anything is written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pytest_kdassert.core.atomic import replace_file, unwritable_reason
from pytest_kdassert.core.errors import UnwritableFileError
from pytest_kdassert.core.pyfile import decode_python, encode_python
from pytest_kdassert.rewrite import apply_edits
from tests.stubs import fixed_suggester

BOM = b"\xef\xbb\xbf"
ROOT = Path(__file__).resolve().parent.parent


def _stub(pytester, candidates):
    pytester.makeconftest(fixed_suggester(candidates))


def _apply(pytester, *args):
    return pytester.runpytest_inprocess("--suggest-asserts=apply", "--kdassert-no-ground",
                                        "--kdassert-no-templates", *args)


# -- encodings ------------------------------------------------------------------------------

@pytest.mark.parametrize("data, encoding, text", [
    (b"x = 'caf\xc3\xa9'\n", "utf-8", "x = 'café'\n"),
    (BOM + b"x = 1\r\n", "utf-8-sig", "x = 1\r\n"),
    (b"# -*- coding: latin-1 -*-\nx = 'caf\xe9'\n", "iso-8859-1",
     "# -*- coding: latin-1 -*-\nx = 'café'\n"),
])
def test_python_text_round_trips_bytes(data, encoding, text):
    decoded = decode_python(data)
    assert (decoded.text, decoded.encoding) == (text, encoding)
    assert encode_python(decoded.text, decoded.encoding) == data


def test_undecodable_source_says_why():
    with pytest.raises(ValueError, match=r"not valid utf-8 \(byte 0xe9 at offset 8\)"):
        decode_python(b"x = 'caf\xe9'\n")
    with pytest.raises(ValueError, match="encoding declaration is invalid"):
        decode_python(b"# coding: no-such-codec\nx = 0 + 1\n")
    with pytest.raises(ValueError, match="iso-8859-1 cannot store"):
        encode_python("x = '€'\n", "iso-8859-1")


def test_latin1_cookie_file_gets_latin1_bytes(pytester):
    # ASCII source with a latin-1 cookie; the assertion brings the first non-ASCII character
    _stub(pytester, {"test_word": ["assert word == 'café'"]})
    source = b"# -*- coding: latin-1 -*-\ndef test_word():\n    word = 'caf\\xe9'.lower()\n"
    (pytester.path / "test_cookie.py").write_bytes(source)
    _apply(pytester).stdout.fnmatch_lines(["*wrote 1 assertion(s) to test_cookie.py*"])
    assert (pytester.path / "test_cookie.py").read_bytes() == \
        source + b"    assert word == 'caf\xe9'\n"
    pytester.runpytest_inprocess("-p", "no:kdassert").assert_outcomes(passed=1)


def test_real_latin1_file_is_rewritten_not_skipped(pytester):
    _stub(pytester, {"test_word": ["assert len(word) == 4"]})
    source = b"# coding: latin-1\ndef test_word():\n    word = 'caf\xe9'\n"
    (pytester.path / "test_latin.py").write_bytes(source)
    _apply(pytester).stdout.fnmatch_lines(["*wrote 1 assertion(s) to test_latin.py*"])
    assert (pytester.path / "test_latin.py").read_bytes() == source + b"    assert len(word) == 4\n"


def test_bom_file_keeps_its_bom(pytester):
    _stub(pytester, {"test_bom": ["assert t == 'é'"]})
    source = BOM + "def test_bom():\r\n    t = 'é'.lower()\r\n".encode()
    (pytester.path / "test_bom.py").write_bytes(source)
    _apply(pytester).stdout.fnmatch_lines(["*wrote 1 assertion(s) to test_bom.py*"])
    assert (pytester.path / "test_bom.py").read_bytes() == \
        source + "    assert t == 'é'\r\n".encode()


def test_text_the_encoding_cannot_store_is_a_skip_line(pytester):
    _stub(pytester, {"test_word": ["assert word != '€'"]})
    source = b"# coding: latin-1\ndef test_word():\n    word = 'x'\n"
    (pytester.path / "test_euro.py").write_bytes(source)
    _apply(pytester).stdout.fnmatch_lines(
        ["*skipped test_euro.py: the new text has '€', which iso-8859-1 cannot store*"])
    assert (pytester.path / "test_euro.py").read_bytes() == source


# -- read-only files, links -----------------------------------------------------------------

def test_read_only_file_is_refused_even_for_root(pytester):
    _stub(pytester, {"test_ro": ["assert x == 1"]})
    path = pytester.path / "test_ro.py"
    path.write_text("def test_ro():\n    x = 0 + 1\n")
    os.chmod(path, 0o444)
    _apply(pytester).stdout.fnmatch_lines(
        ["*kdassert: skipped test_ro.py: it is read-only (mode -r--r--r--); kdassert leaves "
         "read-only files alone: run `chmod u+w *test_ro.py` to let it write*"])
    assert path.read_text() == "def test_ro():\n    x = 0 + 1\n"
    assert oct(path.stat().st_mode & 0o777) == "0o444"


def test_replace_file_refuses_read_only(tmp_path):
    path = tmp_path / "ro.py"
    path.write_bytes(b"old\n")
    os.chmod(path, 0o400)
    assert "read-only (mode -r--------)" in unwritable_reason(path)
    with pytest.raises(UnwritableFileError, match="ro.py: it is read-only"):
        replace_file(path, b"new\n")
    assert path.read_bytes() == b"old\n"


def test_symbolic_link_is_written_through(tmp_path):
    real = tmp_path / "real" / "test_x.py"
    real.parent.mkdir()
    real.write_bytes(b"old\n")
    link = tmp_path / "test_link.py"
    link.symlink_to(real)
    replace_file(link, b"new\n")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == b"new\n"
    assert sorted(os.listdir(real.parent)) == ["test_x.py"]


def test_symbolic_link_through_the_plugin(pytester):
    _stub(pytester, {"test_l": ["assert x == 1"]})
    real = pytester.mkdir("elsewhere") / "real_code.py"
    real.write_text("def test_l():\n    x = 0 + 1\n")
    link = pytester.path / "test_l.py"
    link.symlink_to(real)
    _apply(pytester).stdout.fnmatch_lines(["*wrote 1 assertion(s) to test_l.py*"])
    assert link.is_symlink()
    assert real.read_text() == "def test_l():\n    x = 0 + 1\n    assert x == 1\n"


def test_hard_links_stay_linked(tmp_path):
    first = tmp_path / "test_a.py"
    first.write_bytes(b"a long old line\n" * 3)
    os.chmod(first, 0o640)
    second = tmp_path / "copy.py"
    os.link(first, second)
    inode = first.stat().st_ino
    replace_file(first, b"new\n")
    assert second.read_bytes() == b"new\n" and first.read_bytes() == b"new\n"
    assert first.stat().st_ino == inode and first.stat().st_nlink == 2
    assert oct(first.stat().st_mode & 0o777) == "0o640"
    assert sorted(os.listdir(tmp_path)) == ["copy.py", "test_a.py"]


# -- SIGTERM inside the write window --------------------------------------------------------

CHILD = '''
import os, sys, time
from pytest_kdassert.core import atomic

target, ready, links = sys.argv[1], sys.argv[2], int(sys.argv[3])
real_replace, real_fsync = os.replace, os.fsync

def slow(real):
    def call(*args):
        open(ready, "w").close()  # inside the window: the parent sends SIGTERM now
        time.sleep(1.5)
        return real(*args)
    return call

if links > 1:
    atomic.os.fsync = slow(real_fsync)
else:
    atomic.os.replace = slow(real_replace)
atomic.replace_file(target, b"new content\\n")
print("after the write")  # reached only if SIGTERM were ignored
'''


@pytest.mark.parametrize("links", [1, 2], ids=["rename", "hard-link-in-place"])
def test_sigterm_in_the_write_window_leaves_no_temp_file(tmp_path, links):
    directory = tmp_path / "d"
    directory.mkdir()
    target = directory / "test_t.py"
    target.write_bytes(b"old\n")
    if links > 1:
        os.link(target, directory / "other.py")
    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(target), str(ready), str(links)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        for _ in range(1200):  # the child imports the core first: allow a busy machine 60 s
            if ready.exists() or child.poll() is not None:
                break
            time.sleep(0.05)
        assert ready.exists(), child.stderr.read().decode()
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGTERM, err.decode()
    assert out == b""  # the signal was delivered right after the write, as usual
    assert target.read_bytes() == b"new content\n"  # the write finished first
    expected = ["other.py", "test_t.py"] if links > 1 else ["test_t.py"]
    assert sorted(os.listdir(directory)) == expected  # no .tmp file


# -- never the same assertion twice ---------------------------------------------------------

ASSERTING = textwrap.dedent('''\
    class TestA:
        def test_x(self):
            y = f()
            assert   y == (1)  # spacing and parentheses differ
            self.assertEqual(y, 1)
''')


@pytest.mark.parametrize("text", ["assert y == 1", "self.assertEqual(y,  1)"])
def test_an_assertion_the_test_has_is_not_appended(text):
    assert apply_edits(ASSERTING, {}, {"TestA.test_x": text}) == (ASSERTING, 0)


def test_a_new_assertion_is_appended_once():
    new, count = apply_edits(ASSERTING, {}, {"TestA.test_x": "assert y > 0"})
    assert (new, count) == (ASSERTING + "        assert y > 0\n", 1)
    assert apply_edits(new, {}, {"TestA.test_x": "assert y>0"}) == (new, 0)


def test_a_placeholder_is_not_filled_with_a_duplicate():
    source = "def test_p():\n    x = 0 + 1\n    assert x == 1\n    assert ...\n"
    assert apply_edits(source, {4: "assert x == 1"}, {}) == (source, 0)
    assert apply_edits(source, {4: "assert x >= 1"}, {}) == (source.replace("...", "x >= 1"), 1)


def test_kdassert_all_three_times_adds_the_assertion_once(pytester):
    _stub(pytester, {"test_has": ["assert len(items) == 2"]})
    path = pytester.makepyfile(test_has="def test_has():\n    items = [1, 2]\n    assert items\n")
    outputs = [_apply(pytester, "--kdassert-all", "-v").stdout.str() for _ in range(3)]
    assert "wrote 1 assertion(s) to test_has.py" in outputs[0]
    assert path.read_text().count("assert len(items) == 2") == 1
    for out in outputs[1:]:
        assert "wrote" not in out
        assert "the test already asserts this" in out  # screened out before it ran


# -- the report path is checked before anything is written ----------------------------------

@pytest.mark.parametrize("where, message", [
    ("blocker/report.json", "*--kdassert-report *blocker/report.json: *blocker is a file, "
                            "not a directory; choose another path*"),
    ("adir.json", "*--kdassert-report *adir.json is a directory; name a file in it*"),
])
def test_unwritable_report_path_stops_before_any_file_is_written(pytester, where, message):
    _stub(pytester, {"test_r": ["assert x == 1"]})
    path = pytester.path / "test_r.py"
    path.write_text("def test_r():\n    x = 0 + 1\n")
    (pytester.path / "blocker").write_text("a file\n")
    (pytester.path / "adir.json").mkdir()
    result = _apply(pytester, f"--kdassert-report={pytester.path / where}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert path.read_text() == "def test_r():\n    x = 0 + 1\n"
