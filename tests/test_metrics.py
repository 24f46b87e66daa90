"""Each metric on hand-made cases with known answers."""

from __future__ import annotations

import math

import pytest

from distillation.metrics import (
    char_similarity,
    code_tokens,
    corpus_bleu,
    exact_match,
    lenient_match,
    levenshtein,
    parses,
    percentile,
    sentence_bleu,
    token_prf,
    top_k_exact,
)


@pytest.mark.parametrize("prediction, reference, expected", [
    ("assert x == 3", "assert x == 3", True),
    ("assert  (x == 3)", "assert x==3", True),  # spacing and redundant parentheses
    ("self.assertEqual(a, 'b')", 'self.assertEqual(a, "b")', True),  # quote style
    ("assert x == 4", "assert x == 3", False),
    ("assert x ==", "assert x ==", False),  # does not parse: always a miss
    ("", "", False),
    ("assert y == 3", "assert x == 3", False),
])
def test_exact_match(prediction, reference, expected):
    assert exact_match(prediction, reference) is expected


@pytest.mark.parametrize("prediction, reference, expected", [
    ("assert x == 4", "assert x == 3", True),
    ("assert x == -4.5", "assert x == 3", True),  # signed literal is one literal
    ("self.assertEqual(f(1), 'a')", "self.assertEqual(f(2), 'bcd')", True),
    ("assert x == f'{y}'", "assert x == 'z'", True),
    ("assert x is None", "assert x is True", False),  # singletons pick the check: kept
    ("assert x == 4", "assert y == 3", False),
    ("assert x == [1, 2]", "assert x == [1]", False),  # structure still counts
    ("assert x ==", "assert x == 3", False),
])
def test_lenient_match(prediction, reference, expected):
    assert lenient_match(prediction, reference) is expected


def test_parses_and_top_k():
    assert parses("assert a") and not parses("assert (") and not parses("   ")
    candidates = ["assert x == 1", "assert x ==", "assert x == 3"]
    assert not top_k_exact(candidates, "assert x == 3", 1)
    assert not top_k_exact(candidates, "assert x == 3", 2)
    assert top_k_exact(candidates, "assert x == 3", 3)
    assert not top_k_exact(candidates, "assert (", 3)


def test_code_tokens_uses_python_tokenizer_then_regex():
    assert code_tokens("assert x == 'a b'") == ["assert", "x", "==", "'a b'"]
    assert code_tokens("assert f(x) >= 1.5") == ["assert", "f", "(", "x", ")", ">=", "1.5"]
    # An unterminated string cannot be tokenised: fall back to the regex.
    assert code_tokens("assert x == 'a b") == ["assert", "x", "=", "=", "'", "a", "b"]


def test_token_prf():
    p, r, f = token_prf("assert x == 3", "assert x == 4")
    assert (p, r) == (0.75, 0.75) and f == pytest.approx(0.75)
    p, r, f = token_prf("assert x", "assert x == 3")  # 2 of 2 predicted, 2 of 4 reference
    assert (p, r) == (1.0, 0.5) and f == pytest.approx(2 / 3)
    assert token_prf("", "assert x") == (0.0, 0.0, 0.0)
    assert token_prf("", "") == (1.0, 1.0, 1.0)
    # Multisets: a repeated token counts as often as it appears in both.
    assert token_prf("assert x == x", "assert x == y")[0] == 0.75


def test_levenshtein_and_char_similarity():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3 and levenshtein("abc", "abc") == 0
    assert char_similarity("abcd", "abcd") == 1.0
    assert char_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert char_similarity("", "") == 1.0 and char_similarity("", "ab") == 0.0


def test_sentence_bleu_known_values():
    assert sentence_bleu("assert x == 3", "assert x == 3") == pytest.approx(1.0)
    assert sentence_bleu("", "assert x") == 0.0
    assert sentence_bleu("foo bar", "assert x") == 0.0  # no unigram in common
    # 4 tokens, 3 unigrams, 2 bigrams, 1 trigram, 0 4-grams match; same length: no penalty.
    expected = math.exp((math.log(3 / 4) + math.log(3 / 4) + math.log(2 / 3) + math.log(1 / 2)) / 4)
    assert sentence_bleu("assert x == 4", "assert x == 3") == pytest.approx(expected)
    # A short prediction pays the brevity penalty exp(1 - 4/2).
    short = sentence_bleu("assert x", "assert x == 3")
    assert short == pytest.approx(math.exp(1 - 2) * math.exp((0 + math.log(2 / 2) + 0 + 0) / 4))


def test_corpus_bleu():
    refs = ["assert a == 1 + 2", "assert b is None"]
    assert corpus_bleu(refs, refs) == pytest.approx(1.0)
    assert corpus_bleu(["x", "y"], refs) == 0.0
    # Counts are pooled over the corpus before the geometric mean.
    preds = ["assert a == 1 + 2", "assert c is None"]
    # unigrams 9/10, bigrams 6/8, trigrams 4/6, 4-grams 3/4; lengths equal
    expected = math.exp((math.log(9 / 10) + math.log(6 / 8) + math.log(4 / 6) + math.log(3 / 4)) / 4)
    assert corpus_bleu(preds, refs) == pytest.approx(expected)


def test_percentile_interpolates():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5.0], 95) == 5.0
    assert percentile(list(range(101)), 95) == 95
    assert math.isnan(percentile([], 50))
