"""Tests waiting for assertions: try `pytest examples/shop/tests/test_suggest_me.py --suggest-asserts`.

`assert ...` marks where an assertion is wanted; a test with no assertion gets one at its end.
"""

import unittest

import pytest

from shop import Cart, apply_discount, format_price


def test_discounted_price():
    price = apply_discount(80.0, 25)
    assert ...


@pytest.mark.parametrize("currency", ["EUR", "USD"])
def test_format_price(currency):
    text = format_price(3.5, currency)


def test_cart_count_after_adds():
    cart = Cart().add("apple", 0.5, quantity=3)
    cart.add("pear", 0.75)
    n = cart.count()


class CartSuggestTestCase(unittest.TestCase):
    def test_total_after_remove(self):
        cart = Cart().add("tea", 3.0).add("milk", 1.0)
        cart.remove("milk")
        total = cart.total()
