"""Tests for the shared core: assertion detection, input format, records, atomic writes, models."""

from __future__ import annotations

import ast
import json
import os

import pytest

from pytest_kdassert.core.assertions import (
    AssertionKind,
    assertion_kind,
    is_placeholder_assert,
    normalize_assertion,
)
from pytest_kdassert.core.atomic import write_text_atomic
from pytest_kdassert.core.errors import (
    ConfigError,
    DataError,
    ModelNotFoundError,
    VocabMismatchError,
)
from pytest_kdassert.core.input_format import (
    FOCAL_SEP,
    PLACEHOLDER,
    InputFormatConfig,
    build_source,
)
from pytest_kdassert.core.records import Example, load_examples, write_examples


def kind(src: str):
    return assertion_kind(ast.parse(src).body[0])


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ("assert x == 1", AssertionKind.ASSERT),
        ("self.assertEqual(a, b)", AssertionKind.UNITTEST),
        ("self.assertRaises(ValueError, f)", AssertionKind.UNITTEST),
        ("np.testing.assert_allclose(a, b)", AssertionKind.HELPER),
        ("assert_frame_equal(a, b)", AssertionKind.HELPER),
        ("foo(x)", None),
        ("x = assert_thing", None),
        ("assertion(x)", None),
    ],
)
def test_assertion_kind(src, expected):
    assert kind(src) is expected


def test_placeholder_assert_is_only_bare_ellipsis():
    assert is_placeholder_assert(ast.parse("assert ...").body[0])
    assert not is_placeholder_assert(ast.parse("assert ..., 'msg'").body[0])
    assert not is_placeholder_assert(ast.parse("assert x").body[0])


def test_normalize_assertion():
    assert normalize_assertion("assert  (x==1)") == "assert x == 1"
    assert normalize_assertion("self.assertEqual( a,b )") == "self.assertEqual(a, b)"
    assert normalize_assertion("assert x ==") is None
    assert normalize_assertion("assert x; assert y") is None


def test_build_source_keeps_everything_when_short():
    text = build_source("def f():\n    return 1", f"def test_f():\n    {PLACEHOLDER}")
    assert text == f"def f():\n    return 1\n{FOCAL_SEP}\ndef test_f():\n    {PLACEHOLDER}"


def test_build_source_trims_around_placeholder():
    focal = "def f(a):\n" + "".join(f"    v{i} = a + {i}\n" for i in range(60)) + "    return a"
    test = "def test_f():\n" + "".join(f"    y{i} = f({i})\n" for i in range(40))
    test += f"    {PLACEHOLDER}\n    tail = 1"
    text = build_source(focal, test, InputFormatConfig(max_source_tokens=120))
    focal_part, test_part = text.split(FOCAL_SEP)
    assert focal_part.startswith("def f(a):\n    v0 = a + 0")  # the head of the focal is kept
    assert "return a" not in focal_part
    lines = test_part.strip().splitlines()
    assert lines[0] == "def test_f():"
    assert f"    {PLACEHOLDER}" in lines
    assert "    y39 = f(39)" in lines  # the line right above the placeholder
    assert "    y0 = f(0)" not in lines  # far away setup is dropped first


def test_input_format_config_validates():
    with pytest.raises(ConfigError, match="test_share"):
        InputFormatConfig(test_share=0)


def _example(k: int) -> Example:
    return Example(
        id=f"p:t.py::test_x#{k}", project="p", test_file="t.py", test_name="test_x",
        focal_name=None, focal_source="", test_source_masked=PLACEHOLDER, assertion="assert x",
    )


def test_records_round_trip(tmp_path):
    path = tmp_path / "d.jsonl"
    assert write_examples(path, [_example(0), _example(1)]) == 2
    assert load_examples(path) == [_example(0), _example(1)]
    assert load_examples(path, limit=1) == [_example(0)]


def test_records_reject_wrong_schema(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"id": "x", "extra": 1}) + "\n")
    with pytest.raises(DataError, match=r"d.jsonl:1: not in the mining schema"):
        load_examples(path)


def test_atomic_write_keeps_original_on_error(tmp_path):
    target = tmp_path / "keep.py"
    target.write_text("original\n")
    os.chmod(target, 0o644)
    with pytest.raises(KeyboardInterrupt):
        from pytest_kdassert.core.atomic import atomic_write

        with atomic_write(target) as handle:
            handle.write("half")
            raise KeyboardInterrupt
    assert target.read_text() == "original\n"
    assert os.listdir(tmp_path) == ["keep.py"]
    write_text_atomic(target, "new\r\n")
    assert target.read_bytes() == b"new\r\n"
    assert oct(target.stat().st_mode & 0o777) == "0o644"


def test_tokenizer_round_trips_code(tiny_tokenizer):
    code = "    self.assertEqual(add(1, 2), 'é')"
    ids = tiny_tokenizer(code).input_ids
    assert ids[-1] == tiny_tokenizer.eos_token_id
    assert tiny_tokenizer.decode(ids, skip_special_tokens=True) == code
    assert tiny_tokenizer.convert_tokens_to_ids(PLACEHOLDER) == 3


def test_load_tiny_model_and_generate(tiny_model_dir):
    from pytest_kdassert.core.generate import GenerationConfig, generate_candidates
    from pytest_kdassert.core.loading import load_seq2seq

    model, tokenizer = load_seq2seq(tiny_model_dir)
    out = generate_candidates(model, tokenizer, ["def f():\n    pass", "x"],
                              GenerationConfig(num_beams=3, max_new_tokens=5))
    assert [len(c) for c in out] == [3, 3]
    assert [c.rank for c in out[0]] == [0, 1, 2]
    assert out[0][0].score >= out[0][1].score >= out[0][2].score


def test_score_targets_encodes_each_source_once_and_matches_a_full_forward(tiny_model_dir, monkeypatch):
    import torch

    from pytest_kdassert.core.generate import GenerationConfig, score_targets
    from pytest_kdassert.core.loading import load_seq2seq

    model, tokenizer = load_seq2seq(tiny_model_dir)
    pairs = [("def f():\n    return 1", "assert f() == 1"), ("x = 2", "assert x == 2"),
             ("def f():\n    return 1", "assert f()"), ("x = 2", "assert x"),
             ("def f():\n    return 1", "assert f() is not None")]
    encoder, calls = model.get_encoder(), []
    monkeypatch.setattr(encoder, "forward", lambda *a, _f=encoder.forward, **k: calls.append(1) or _f(*a, **k))
    scores = score_targets(model, tokenizer, pairs, GenerationConfig(batch_size=2))
    assert len(calls) == 1  # two distinct sources, one batch of them
    expected = []
    with torch.inference_mode():
        for source, target in pairs:  # the whole model, one pair at a time
            inputs = tokenizer([source], return_tensors="pt")
            labels = tokenizer(text_target=[target], return_tensors="pt").input_ids
            logp = torch.log_softmax(model(**inputs, labels=labels).logits, dim=-1)
            expected.append(logp.gather(-1, labels.unsqueeze(-1)).mean().item())
    assert scores == pytest.approx(expected, abs=1e-5)


def test_missing_model_dir_has_clear_error(tmp_path):
    from pytest_kdassert.core.loading import resolve_model_path

    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model_path(tmp_path)
    with pytest.raises(ModelNotFoundError, match="no such directory"):
        resolve_model_path(tmp_path / "nope")


def test_vocab_mismatch_refused(tiny_tokenizer):
    from distillation.models import check_same_vocabulary
    from distillation.tokenizer import TokenizerConfig, train_tokenizer

    other = train_tokenizer(["completely different text"] * 5, TokenizerConfig(vocab_size=300, min_frequency=1))
    check_same_vocabulary(tiny_tokenizer, tiny_tokenizer)
    with pytest.raises(VocabMismatchError, match="same tokenizer"):
        check_same_vocabulary(tiny_tokenizer, other)


def test_atomic_write_new_file_gets_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "new.txt", "x")
    finally:
        os.umask(old)
    assert oct((tmp_path / "new.txt").stat().st_mode & 0o777) == "0o644"


def test_build_model_accepts_overrides(tiny_tokenizer):
    from distillation.models import build_model

    model = build_model("tiny", tiny_tokenizer, vocab_size=512, num_layers=2)
    assert model.config.vocab_size == 512
    assert model.config.num_layers == 2
