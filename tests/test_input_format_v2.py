"""Input format version 2: in-project exemplars after the test, under one token budget."""

from __future__ import annotations

import json

import pytest

from pytest_kdassert.core.errors import ConfigError
from pytest_kdassert.core.input_format import (
    EXEMPLAR_SEP,
    FOCAL_SEP,
    SPECIAL_TOKENS,
    InputFormatConfig,
    approx_token_count,
    build_source,
    exemplar_text,
)
from pytest_kdassert.core.loading import FORMAT_FILE, load_format_config, save_format_config

FOCAL = "def parse(s):\n    return int(s)"
TEST = "def test_a():\n    r = parse('2')\n    <AssertPlaceHolder>"
OTHER = "def test_b():\n    p = Parser()\n    x = p.parse('1')\n    y = 3\n    <AssertPlaceHolder>\n    z = 1"


def test_exemplar_text_keeps_the_lines_its_assertion_reads():
    assert exemplar_text(OTHER, "assert x == 1") == "x = p.parse('1')\nassert x == 1"
    assert exemplar_text(OTHER, "assert x + y == 4") == "x = p.parse('1')\ny = 3\nassert x + y == 4"
    assert exemplar_text(OTHER, "assert x + y == 4", context_lines=1) == "y = 3\nassert x + y == 4"
    assert exemplar_text(OTHER, "assert q") == "assert q"  # nothing binds q before the site
    with_as = "def test_c():\n    with open_db() as db:\n        <AssertPlaceHolder>"
    assert exemplar_text(with_as, "assert db.ok") == "with open_db() as db:\nassert db.ok"


def test_version_2_appends_exemplars_most_similar_first_up_to_k():
    config = InputFormatConfig(version=2, exemplars=2)
    text = build_source(FOCAL, TEST, config, exemplars=["assert r == 2", "assert r", "assert x"])
    assert text == f"{FOCAL}\n{FOCAL_SEP}\n{TEST}\n{EXEMPLAR_SEP}\nassert r == 2\n{EXEMPLAR_SEP}\nassert r"


def test_version_1_ignores_exemplars():
    assert build_source(FOCAL, TEST, exemplars=["assert r == 2"]) == build_source(FOCAL, TEST)


def test_the_whole_input_stays_within_the_budget():
    config = InputFormatConfig(version=2, exemplars=3, max_source_tokens=60, exemplar_share=0.3)
    long_focal = "\n".join(f"    v{i} = {i}" for i in range(40))
    long_test = "def test_a():\n" + "\n".join(f"    a{i} = {i}" for i in range(40)) + \
        "\n    <AssertPlaceHolder>"
    text = build_source(long_focal, long_test, config,
                        exemplars=["assert a1 == 1", "assert a2 == 2", "assert a3 == 3"])
    costs = sum(approx_token_count(line) + 1 for line in text.splitlines())
    assert costs <= 60
    assert "<AssertPlaceHolder>" in text and text.count(EXEMPLAR_SEP) >= 1


def test_short_inputs_let_exemplars_use_the_rest_of_the_budget():
    config = InputFormatConfig(version=2, exemplars=3, max_source_tokens=200, exemplar_share=0.1)
    many = [f"x{i} = f({i})\nassert x{i} == {i}" for i in range(3)]
    assert build_source(FOCAL, TEST, config, exemplars=many).count(EXEMPLAR_SEP) == 3


def test_config_validation():
    with pytest.raises(ConfigError):
        InputFormatConfig(version=2)  # needs exemplars
    with pytest.raises(ConfigError):
        InputFormatConfig(exemplars=3)  # version 1 has none
    with pytest.raises(ConfigError, match="newer kdassert"):
        InputFormatConfig(version=9, exemplars=1)


def test_format_file_round_trips_and_old_files_read_as_version_1(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    save_format_config(tmp_path, InputFormatConfig(version=2, exemplars=3))
    assert load_format_config(tmp_path) == InputFormatConfig(version=2, exemplars=3)
    (tmp_path / FORMAT_FILE).write_text(json.dumps({"max_source_tokens": 320,
                                                    "max_target_tokens": 64, "test_share": 0.6}))
    assert load_format_config(tmp_path).version == 1


def test_the_separator_is_a_special_token():
    assert SPECIAL_TOKENS[-1] == EXEMPLAR_SEP and SPECIAL_TOKENS[:3] == ("<pad>", "</s>", "<unk>")
