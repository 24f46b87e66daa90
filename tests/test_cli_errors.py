"""Errors are one clear line (issue 14, item 5): a corrupt model gives the plugin one notice
and the tests run as usual; every CLI user error is one ``Error: ...`` line and exit code 1."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict

import pytest
from click.testing import CliRunner

from distillation.cli import main
from pytest_kdassert.core.errors import CorruptModelError, DataError
from pytest_kdassert.core.loading import default_model_dir, load_seq2seq, load_tokenizer
from pytest_kdassert.core.records import Example, load_examples

GOOD = Example(id="p:t.py::test_x#0", project="p", test_file="t.py", test_name="test_x",
               focal_name=None, focal_source="", test_source_masked="x = 1\n<AssertPlaceHolder>",
               assertion="assert x == 1")


@pytest.fixture
def truncated_model(tmp_path):
    """A copy of the bundled model whose weights file lost its second half."""
    directory = tmp_path / "model"
    shutil.copytree(default_model_dir(), directory)
    weights = directory / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    return directory


def _jsonl(path, *records, raw: bytes = b""):
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records) + raw)
    return path


def _one_error_line(result) -> str:
    """The CLI's whole output, checked to be a single ``Error:`` line from a clean exit."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


# -- loading --------------------------------------------------------------------------------

def test_truncated_weights_raise_corrupt_model_error(truncated_model):
    with pytest.raises(CorruptModelError,
                       match=r"Cannot load the model in .*model: Error while deserializing header"):
        load_seq2seq(truncated_model)


def test_tokenizer_of_the_wrong_shape_raises_corrupt_model_error(tmp_path):
    directory = tmp_path / "model"
    shutil.copytree(default_model_dir(), directory)
    (directory / "tokenizer.json").write_text('{"version": "1.0", "model": 3}')
    with pytest.raises(CorruptModelError, match="Cannot load the tokenizer from .*retrain it"):
        load_tokenizer(directory)


def test_plugin_gives_one_notice_and_runs_the_tests(pytester, truncated_model):
    pytester.makepyfile(test_one="def test_one():\n    x = 1\n", test_two="def test_two():\n    pass\n")
    result = pytester.runpytest_inprocess("--suggest-asserts", f"--kdassert-model={truncated_model}")
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    output = result.stdout.str()
    assert "INTERNALERROR" not in output
    notices = [line for line in output.splitlines() if "kdassert: no suggestions: " in line]
    assert len(notices) == 2  # once when it happens, once in the summary
    assert "Cannot load the model in" in notices[0] and "Error while deserializing" in notices[0]


# -- records --------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("focal_source", 3, "field 'focal_source' must be a string, got int 3"),
    ("focal_name", ["f"], "field 'focal_name' must be a string or null, got list"),
    ("assertion", None, "field 'assertion' must be a string, got NoneType null"),
])
def test_records_check_field_types(tmp_path, field, value, message):
    path = _jsonl(tmp_path / "d.jsonl", asdict(GOOD), {**asdict(GOOD), field: value})
    with pytest.raises(DataError, match=rf"d.jsonl:2: {message}"):
        load_examples(path)


def test_records_accept_a_bom_and_null_focal_name(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(asdict(GOOD)).encode() + b"\n")
    assert load_examples(path) == [GOOD]


# -- the CLI --------------------------------------------------------------------------------

def _bench(tmp_path, data, model="default"):
    return CliRunner().invoke(main, ["bench", "--data", str(data), "--model", str(model),
                                     "--no-memory", "--latency-examples", "0", "--beams", "1",
                                     "--out", str(tmp_path / "bench.json")])


def test_cli_corrupt_safetensors(tmp_path, truncated_model):
    data = _jsonl(tmp_path / "d.jsonl", asdict(GOOD))
    line = _one_error_line(_bench(tmp_path, data, truncated_model))
    assert line.startswith(f"Error: Cannot load the model in {truncated_model}: Error while "
                           "deserializing header")
    assert not (tmp_path / "bench.json").exists()


def test_cli_non_utf8_jsonl(tmp_path):
    data = _jsonl(tmp_path / "d.jsonl", asdict(GOOD), raw=b'{"id": "caf\xe9"}\n')
    line = _one_error_line(_bench(tmp_path, data))
    assert line == (f"Error: {data}:2: not UTF-8 (byte 0xe9 at column 12); JSON Lines files must "
                    "be UTF-8: re-encode it, e.g. with `iconv -t UTF-8`.")


def test_cli_wrong_field_type(tmp_path):
    data = _jsonl(tmp_path / "d.jsonl", {**asdict(GOOD), "focal_source": 3})
    line = _one_error_line(_bench(tmp_path, data))
    assert line == (f"Error: {data}:1: field 'focal_source' must be a string, got int 3. "
                    "Re-create the file with `kdassert mine`.")


def _mine(tmp_path, *args):
    return CliRunner().invoke(main, ["mine", *args, "-o", str(tmp_path / "out"), "--workers", "1",
                                     "--cache-dir", str(tmp_path / "cache")])


def test_cli_empty_corpus(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("# nothing here yet\n\n")
    line = _one_error_line(_mine(tmp_path, "--corpus", str(corpus)))
    assert line == (f"Error: {corpus}: the corpus lists no sources; add one spec per line, "
                    "e.g. pypi:attrs==25.3.0 or a directory path")


def test_cli_non_utf8_corpus(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"# projects\npypi:caf\xe9==1.0\n")
    line = _one_error_line(_mine(tmp_path, "--corpus", str(corpus)))
    assert line == (f"Error: {corpus}:2: corpus files must be UTF-8 (byte 0xe9 is not); "
                    "re-encode it, e.g. with `iconv -t UTF-8`")


def test_cli_empty_mining_result(tmp_path):
    project = tmp_path / "proj"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    line = _one_error_line(_mine(tmp_path, str(project)))
    assert line == ("Error: no examples mined from 1 project(s): 1 test file(s), 1 test(s), "
                    "skipped files: none. Point at sources with pytest/unittest tests that have "
                    f"1..3 assertions; nothing was written to {tmp_path / 'out'}.")
    assert not (tmp_path / "out" / "train.jsonl").exists()


def test_cli_joins_a_multi_line_library_message(tmp_path, monkeypatch):
    def fail(config):
        raise DataError("first line\n  second line")

    monkeypatch.setattr("distillation.bench.run_bench", fail)
    data = _jsonl(tmp_path / "d.jsonl", asdict(GOOD))
    assert _one_error_line(_bench(tmp_path, data)) == "Error: first line second line"
