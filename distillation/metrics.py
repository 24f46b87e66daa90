"""Pure metric functions for generated assertions, each checked on hand-made cases.

Definitions (also in the README's benchmark section):

* **exact match** (strict): prediction and reference parse to the same Python AST
  (``ast.dump`` of the parsed module, so spacing, quotes and redundant parentheses do not
  matter). Output that does not parse is a miss. This is the "exact match" / "perfect
  prediction" of ATLAS-style assertion generation papers.
* **lenient match**: exact match after every literal constant (number, string, bytes; a
  leading ``-``/``+`` included) is replaced by one placeholder, so the expected value is
  ignored. ``None``, ``True``, ``False`` and ``...`` are kept: they choose the kind of check.
* **token precision / recall / F1**: multiset overlap of Python tokens (``tokenize``; the
  regex ``\\w+|[^\\w\\s]`` when the text cannot be tokenised).
* **character similarity**: ``1 - levenshtein(a, b) / max(len(a), len(b))``.
* **BLEU-4**: corpus BLEU (Papineni et al. 2002, uniform weights, brevity penalty) and
  sentence BLEU with add-one smoothing of the 2- to 4-gram precisions (Lin & Och 2004).
"""

from __future__ import annotations

import ast
import io
import math
import re
import tokenize
from collections import Counter
from collections.abc import Sequence

LITERAL = "__kdassert_literal__"
"""What every literal becomes before a lenient comparison."""

_REGEX_TOKENS = re.compile(r"\w+|[^\w\s]")
_SKIP_TOKENS = {tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT,
                tokenize.ENDMARKER, tokenize.COMMENT, tokenize.ENCODING}
_SINGLETONS = (None, True, False, Ellipsis)


def parse_code(text: str) -> ast.Module | None:
    """The parsed module of ``text``, or None when it is empty or does not parse."""
    try:
        module = ast.parse(text.strip())
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return module if module.body else None


def ast_key(text: str) -> str | None:
    """``ast.dump`` of the parsed text (the strict comparison key), None when it does not parse."""
    module = parse_code(text)
    return None if module is None else ast.dump(module)


class _MaskLiterals(ast.NodeTransformer):
    def visit_Constant(self, node: ast.Constant):  # noqa: N802 - ast API
        if any(node.value is s for s in _SINGLETONS):
            return node
        return ast.copy_location(ast.Constant(LITERAL), node)

    def visit_UnaryOp(self, node: ast.UnaryOp):  # noqa: N802 - ast API
        if isinstance(node.op, ast.USub | ast.UAdd) and isinstance(node.operand, ast.Constant) \
                and not any(node.operand.value is s for s in _SINGLETONS):
            return ast.copy_location(ast.Constant(LITERAL), node)
        return self.generic_visit(node)

    def visit_JoinedStr(self, node: ast.JoinedStr):  # noqa: N802 - an f-string is a literal too
        return ast.copy_location(ast.Constant(LITERAL), node)


def lenient_key(text: str) -> str | None:
    """Comparison key with literal constants masked; None when the text does not parse."""
    module = parse_code(text)
    return None if module is None else ast.dump(_MaskLiterals().visit(module))


def exact_match(prediction: str, reference: str) -> bool:
    """Strict match: both parse and their ASTs are equal."""
    key = ast_key(prediction)
    return key is not None and key == ast_key(reference)


def lenient_match(prediction: str, reference: str) -> bool:
    """Match that ignores the values of literals (the expected value of most assertions)."""
    key = lenient_key(prediction)
    return key is not None and key == lenient_key(reference)


def parses(text: str) -> bool:
    """True when the text is valid Python (at least one statement)."""
    return parse_code(text) is not None


def top_k_exact(candidates: Sequence[str], reference: str, k: int) -> bool:
    """True when one of the first ``k`` candidates is an exact match."""
    ref = ast_key(reference)
    return ref is not None and any(ast_key(c) == ref for c in candidates[:k])


def code_tokens(text: str) -> list[str]:
    """Python tokens of ``text`` (whitespace, comments and newlines dropped)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text.strip()).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return _REGEX_TOKENS.findall(text)
    if any(tok.type == tokenize.ERRORTOKEN for tok in tokens):  # e.g. an unterminated string
        return _REGEX_TOKENS.findall(text)
    return [tok.string for tok in tokens if tok.type not in _SKIP_TOKENS and tok.string]


def token_prf(prediction: str, reference: str) -> tuple[float, float, float]:
    """Precision, recall and F1 of the multiset overlap of tokens (two empties score 1)."""
    pred, ref = Counter(code_tokens(prediction)), Counter(code_tokens(reference))
    if not pred and not ref:
        return 1.0, 1.0, 1.0
    overlap = sum((pred & ref).values())
    precision = overlap / sum(pred.values()) if pred else 0.0
    recall = overlap / sum(ref.values()) if ref else 0.0
    f1 = 2 * precision * recall / (precision + recall) if overlap else 0.0
    return precision, recall, f1


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions and substitutions cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def char_similarity(a: str, b: str) -> float:
    """Normalised Levenshtein similarity in [0, 1]; 1 for identical strings."""
    a, b = a.strip(), b.strip()
    longest = max(len(a), len(b))
    return 1.0 if longest == 0 else 1.0 - levenshtein(a, b) / longest


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _ngram_stats(pred: Sequence[str], ref: Sequence[str], max_n: int) -> list[tuple[int, int]]:
    """(clipped matches, candidate n-grams) for n = 1..max_n."""
    stats = []
    for n in range(1, max_n + 1):
        p = _ngrams(pred, n)
        stats.append((sum((p & _ngrams(ref, n)).values()), sum(p.values())))
    return stats


def _brevity_penalty(pred_len: int, ref_len: int) -> float:
    if pred_len == 0:
        return 0.0
    return 1.0 if pred_len > ref_len else math.exp(1 - ref_len / pred_len)


def sentence_bleu(prediction: str, reference: str, max_n: int = 4) -> float:
    """Smoothed sentence BLEU-4 (add one to n-gram counts for n >= 2, Lin & Och 2004)."""
    pred, ref = code_tokens(prediction), code_tokens(reference)
    if not pred:
        return 0.0
    stats = _ngram_stats(pred, ref, max_n)
    if stats[0][0] == 0:
        return 0.0
    log_p = 0.0
    for n, (match, total) in enumerate(stats, start=1):
        smooth = 1 if n > 1 else 0
        log_p += math.log((match + smooth) / (total + smooth)) / max_n
    return _brevity_penalty(len(pred), len(ref)) * math.exp(log_p)


def corpus_bleu(predictions: Sequence[str], references: Sequence[str], max_n: int = 4) -> float:
    """Corpus BLEU-4: n-gram counts summed over all pairs, one brevity penalty, no smoothing."""
    matches, totals = [0] * max_n, [0] * max_n
    pred_len = ref_len = 0
    for prediction, reference in zip(predictions, references, strict=True):
        pred, ref = code_tokens(prediction), code_tokens(reference)
        pred_len, ref_len = pred_len + len(pred), ref_len + len(ref)
        for i, (match, total) in enumerate(_ngram_stats(pred, ref, max_n)):
            matches[i] += match
            totals[i] += total
    if min(matches) == 0:
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / max_n
    return _brevity_penalty(pred_len, ref_len) * math.exp(log_p)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation, as numpy's default."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion (``successes`` of ``n``), 95% by default.

    Unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or n:
    0 of 100 gives (0, 0.037). ``n`` = 0 gives (0, 1): nothing is known.
    """
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n], got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value of paired per-example correctness of two systems.

    Only the discordant pairs count: ``only_a`` examples right in ``a`` alone and ``only_b``
    right in ``b`` alone; under "no difference" each discordant pair is a fair coin, so
    p = min(1, 2 * P(Binomial(only_a + only_b, 1/2) <= min(only_a, only_b))). No discordant
    pair gives 1.0.
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def bootstrap_mean_interval(values: Sequence[float], resamples: int = 2000,
                            seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of per-example scores (e.g. token F1),
    seeded so a report reads the same each time it is printed."""
    import numpy as np

    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def paired_bootstrap_difference(a: Sequence[float], b: Sequence[float], resamples: int = 2000,
                                seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a - b`` over paired per-example scores of two systems and its 95% paired
    bootstrap interval (examples resampled together); the difference is significant at 5%
    when the interval leaves out 0."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    differences = [x - y for x, y in zip(a, b, strict=True)]
    low, high = bootstrap_mean_interval(differences, resamples, seed)
    mean = sum(differences) / len(differences) if differences else float("nan")
    return mean, low, high
