def apply_discount(price, percent):
    """Price after a percentage discount, rounded to cents."""
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be in [0, 100], got {percent}")
    return round(price * (100 - percent) / 100, 2)


def format_price(price, currency="EUR"):
    """``12.5`` -> ``'12.50 EUR'``."""
    return f"{price:.2f} {currency}"
