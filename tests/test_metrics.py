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
    mcnemar_exact,
    parses,
    percentile,
    sentence_bleu,
    token_prf,
    top_k_exact,
    wilson_interval,
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


def test_wilson_interval_known_values():
    low, high = wilson_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    low, high = wilson_interval(0, 100)  # not the empty interval of the normal approximation
    assert low == 0.0 and round(high, 4) == 0.037
    low, high = wilson_interval(100, 100)
    assert round(low, 4) == 0.963 and high == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    narrow, wide = wilson_interval(50, 500), wilson_interval(5, 50)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]  # more examples, tighter interval
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_mcnemar_exact_counts_only_discordant_pairs():
    # 6 examples right in b alone, none in a alone: p = 2 * 0.5**6.
    a = [True] * 10 + [False] * 6
    b = [True] * 10 + [True] * 6
    assert mcnemar_exact(a, b) == 2 / 64 and mcnemar_exact(b, a) == 2 / 64
    # 1 vs 5: p = 2 * (C(6,0) + C(6,1)) / 2**6, and concordant pairs change nothing.
    a = [True, False, False, False, False, False]
    b = [False, True, True, True, True, True]
    assert mcnemar_exact(a, b) == 2 * 7 / 64
    assert mcnemar_exact(a + [True] * 50 + [False] * 50, b + [True] * 50 + [False] * 50) == 2 * 7 / 64
    assert mcnemar_exact([True, False], [True, False]) == 1.0  # no discordant pair
    assert mcnemar_exact([True, False, True], [False, True, False]) == 1.0  # capped at 1
    with pytest.raises(ValueError, match="length"):
        mcnemar_exact([True], [True, False])
