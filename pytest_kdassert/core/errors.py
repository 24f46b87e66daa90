"""Exceptions raised by kdassert's library code.

Every message says what went wrong *and* what to do next. The CLI turns these into
``click.ClickException``; the pytest plugin into ``pytest.UsageError`` or a report line.
"""


class KdassertError(Exception):
    """Base class for every error kdassert raises on purpose."""


class ConfigError(KdassertError, ValueError):
    """A configuration value is out of range or inconsistent."""


class ModelNotFoundError(KdassertError):
    """A model directory (or the bundled default) is missing or incomplete."""


class CorruptModelError(KdassertError):
    """A model directory exists but its files cannot be loaded."""


class VocabMismatchError(KdassertError):
    """Teacher and student do not share a vocabulary, so their logits cannot be compared."""


class TrainingDivergedError(KdassertError):
    """A training run's loss or gradient norm stopped being a finite number."""


class CorruptShardError(KdassertError):
    """A teacher-logit shard is truncated, altered or does not match its manifest."""


class DataError(KdassertError):
    """A data file is missing, unreadable or not in the mining schema."""


class SourceError(KdassertError):
    """A mining source (directory or ``pypi:NAME==VERSION``) cannot be read or fetched."""


class UnwritableFileError(KdassertError):
    """An existing file kdassert was asked to rewrite is read-only or not the user's to write."""
