import unittest

from shop import Cart


def test_total_of_two_items():
    cart = Cart()
    cart.add("apple", 0.5, quantity=4)
    cart.add("bread", 2.25)
    assert cart.total() == 4.25


def test_count_after_remove():
    cart = Cart().add("apple", 0.5, quantity=2).add("milk", 1.0)
    cart.remove("apple")
    assert cart.count() == 1
    assert "apple" not in cart.items


class CartTestCase(unittest.TestCase):
    def setUp(self):
        self.cart = Cart()

    def test_empty_total(self):
        self.assertEqual(self.cart.total(), 0)

    def test_add_same_item_twice(self):
        self.cart.add("tea", 3.0)
        self.cart.add("tea", 3.0)
        self.assertEqual(self.cart.items["tea"], (3.0, 2))
