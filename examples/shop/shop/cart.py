class Cart:
    """A shopping cart: item name -> (unit price, quantity)."""

    def __init__(self):
        self.items = {}

    def add(self, name, price, quantity=1):
        _, held = self.items.get(name, (price, 0))
        self.items[name] = (price, held + quantity)
        return self

    def remove(self, name):
        self.items.pop(name, None)

    def total(self):
        return round(sum(price * qty for price, qty in self.items.values()), 2)

    def count(self):
        return sum(qty for _, qty in self.items.values())
