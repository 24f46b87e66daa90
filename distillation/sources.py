"""Model input texts for mined examples, with their in-project exemplars for format v2.

Training data, the logit store and ``kdassert bench`` build inputs here, so every stage sees
the same exemplars: for each example, the most similar assertions of *other* tests of its own
project (:class:`pytest_kdassert.core.exemplars.ExemplarIndex`), searched in a pool (by
default the examples' own file: splits are by project, so nothing crosses a split).
"""

from __future__ import annotations

from collections.abc import Sequence

from tqdm.auto import tqdm

from pytest_kdassert.core.exemplars import ExemplarConfig, example_site, project_indexes
from pytest_kdassert.core.input_format import InputFormatConfig, example_source, exemplar_text
from pytest_kdassert.core.records import Example


def exemplar_texts(examples: Sequence[Example], fmt: InputFormatConfig,
                   pool: Sequence[Example] | None = None) -> list[list[str]]:
    """Each example's rendered exemplars, most similar first (``fmt.exemplars`` of them)."""
    if fmt.version < 2:
        return [[] for _ in examples]
    indexes = project_indexes(examples if pool is None else pool, ExemplarConfig(k=fmt.exemplars))
    texts = []
    for example in tqdm(examples, desc="exemplars", unit="ex", disable=None, leave=False):
        index = indexes.get(example.project)
        found = index.query(example_site(example)) if index is not None else []
        texts.append([exemplar_text(e.entry.masked_test, e.entry.assertion,
                                    fmt.exemplar_context_lines) for e in found])
    return texts


def example_sources(examples: Sequence[Example], fmt: InputFormatConfig,
                    pool: Sequence[Example] | None = None) -> list[str]:
    """The model input of each example in ``fmt`` (exemplars included for version 2)."""
    return [example_source(example, fmt, exemplars=texts) for example, texts
            in zip(examples, exemplar_texts(examples, fmt, pool), strict=True)]
