"""kdassert's training side: mining, tokenizer, models, distillation, benchmarks.

The pytest plugin (``pytest_kdassert``) imports only what it needs from here, lazily, so a
plain ``pytest`` run never pays for torch.
"""

__version__ = "0.1.0"
