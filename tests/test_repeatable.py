# ruff: noqa: F841 - the test bodies below are analysed, not run: they bind what a test would
"""The static check that lets the flakiness guard skip a re-run that could tell nothing."""

from __future__ import annotations

import functools
import math
import os
import random
import time
import types
import unittest

import pytest

from pytest_kdassert.repeatable import is_constant, repeatable_call

LIMIT = 10
SEEN: list = []
NAMES = ("a", "b")


def scale(values, factor):
    return [v * factor for v in values]


def clipped(values, low=0, high=LIMIT):
    out = []
    for v in values:
        if v < low:
            v = low
        out.append(min(v, high))
    return out


def norm(x, y):
    return math.sqrt(x * x + y * y)


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def label(value):
    try:
        return f"{NAMES[value]}!"
    except IndexError:
        raise ValueError(value) from None


def jitter(values):
    return [v + random.random() for v in values]


def stamped(value):
    return (value, time.time())


def remembered(value):
    SEEN.append(value)
    return len(SEEN)


def accumulate(value, into=[]):  # noqa: B006 - the mutable default is the point
    into.append(value)
    return len(into)


def where():
    return os.getcwd()


def tagged(box, value):
    box.tag = value
    return box


@functools.lru_cache
def cached(value):
    return value * 2


def calls_cached(value):
    return cached(value)


def make_counter():
    count = [0]

    def counter():
        count[0] += 1
        return count[0]

    return counter


counter = make_counter()


def _test_pure():
    result = scale([1, 2, 3], 2)
    bounded = clipped(result, high=5)
    total = norm(3, 4) + fib(6)
    word = label(1)
    assert ...


def _test_parametrized(value, name):
    result = scale([value], 2)
    assert ...


def _case(call: str):
    """A module-level test body calling one function (its source must be on disk)."""
    return {
        "jitter": _test_jitter, "stamped": _test_stamped, "remembered": _test_remembered,
        "accumulate": _test_accumulate, "where": _test_where, "tagged": _test_tagged,
        "cached": _test_cached, "counter": _test_counter, "global_list": _test_reads_global_list,
    }[call]


def _test_jitter():
    result = jitter([1])


def _test_stamped():
    result = stamped(1)


def _test_remembered():
    result = remembered(1)


def _test_accumulate():
    result = accumulate(1)


def _test_where():
    result = where()


def _test_tagged():
    result = tagged((), 1)  # the attribute store alone refuses it


def _test_cached():
    result = calls_cached(1)


def _test_counter():
    result = counter()


def _test_reads_global_list():
    result = len(SEEN)


def _item(function, cls=None, **funcargs):
    return types.SimpleNamespace(obj=function, cls=cls, funcargs=funcargs)


def test_a_body_computing_from_literals_through_pure_functions_is_repeatable():
    assert repeatable_call(_item(_test_pure))


def test_constant_arguments_keep_it_repeatable_and_objects_do_not():
    assert repeatable_call(_item(_test_parametrized, value=3, name=("x", 1)))
    assert not repeatable_call(_item(_test_parametrized, value=[3], name="x"))
    assert not repeatable_call(_item(_test_parametrized, value=3))  # an argument it didn't get


@pytest.mark.parametrize("call", ["jitter", "stamped", "remembered", "accumulate", "where",
                                  "tagged", "cached", "counter", "global_list"])
def test_anything_that_may_differ_on_a_second_run_is_not_repeatable(call):
    assert not repeatable_call(_item(_case(call)))


def test_functions_without_source_are_not_repeatable():
    assert not repeatable_call(_item(eval("lambda: 1")))  # noqa: S307 - no source on disk
    assert not repeatable_call(_item(len))


def test_constants_are_immutable_all_the_way_down():
    assert is_constant((1, "a", (2.0, None), frozenset({b"x"})))
    assert not is_constant((1, [2]))
    assert not is_constant({"a": 1})

    class Loud(str):
        def upper(self):
            SEEN.append(self)
            return str.upper(self)

    assert not is_constant(Loud("x"))


class _Case(unittest.TestCase):
    def setUp(self):
        self.seed = random.random()

    def _test_asserts_only(self):
        result = scale([1, 2], 2)
        self.assertEqual(result, [2, 4])
        assert ...

    def _test_reads_setup(self):
        result = scale([self.seed], 2)

    def _test_unused_self(self):
        result = scale([1], 2)


class _Overriding(_Case):
    def assertEqual(self, first, second, msg=None):  # noqa: N802 - unittest's name
        SEEN.append(first)


class _PytestStyle:
    def _test_unused_self(self):
        result = scale([1], 2)

    def _test_reads_self(self):
        result = self.value


def test_a_method_may_use_its_instance_only_for_unittest_assertions():
    """The re-run builds the instance afresh (setUp again): what setup stored may differ."""
    assert repeatable_call(_item(_Case._test_asserts_only, cls=_Case))
    assert repeatable_call(_item(_Case._test_unused_self, cls=_Case))
    assert repeatable_call(_item(_Case("run")._test_unused_self, cls=_Case))  # a bound method
    assert not repeatable_call(_item(_Case._test_reads_setup, cls=_Case))
    assert not repeatable_call(_item(_Case._test_asserts_only, cls=_Overriding))
    assert repeatable_call(_item(_PytestStyle._test_unused_self, cls=_PytestStyle))
    assert not repeatable_call(_item(_PytestStyle._test_reads_self, cls=_PytestStyle))
