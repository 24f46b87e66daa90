"""pytest-kdassert: suggest missing test assertions with a small local model.

Enable with ``pytest --suggest-asserts``. This package imports nothing heavy at import time;
torch and transformers load only when the flag is given.
"""
