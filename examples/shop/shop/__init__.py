"""A tiny shop: the example project for `kdassert mine examples/`."""

from shop.cart import Cart
from shop.prices import apply_discount, format_price

__all__ = ["Cart", "apply_discount", "format_price"]
