import pytest
from shop.prices import apply_discount, format_price


def test_discount():
    price = apply_discount(80.0, 25)
    assert price == 60.0


def test_format_price():
    assert format_price(12.5) == "12.50 EUR"


def test_discount_rejects_bad_percent():
    with pytest.raises(ValueError):
        apply_discount(10.0, 120)
    assert apply_discount(10.0, 100) == 0.0
