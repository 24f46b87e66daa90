"""The plugin's settings, built once from the command line and ini file."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_kdassert.core.errors import ConfigError

MODES = ("diff", "apply", "review")


@dataclass(frozen=True)
class SuggestConfig:
    """How ``pytest --suggest-asserts`` behaves; one field per option."""

    mode: str = "diff"
    """``diff`` prints a patch per file, ``apply`` writes the files, ``review`` asks first."""
    model: str = "default"
    """Model directory, or ``default`` for the student bundled in the package."""
    num_beams: int = 5
    """Beam width; also how many candidates each site gets."""
    batch_size: int = 16
    """Sites per generation batch."""
    threads: int = 0
    """CPU threads for generation (0: torch's default); restored before the tests run."""
    all_tests: bool = False
    """Also suggest for tests that already assert something (after their last statement)."""
    verify: bool = True
    """Run candidates in the test's own frame and keep the best one that passes."""
    ground: bool = True
    """Fill literals in the model's candidates with the values the test run observes."""
    templates: bool = True
    """With grounding: also try ``assert <variable> == <observed value>`` for the variables the
    test assigned last, ranked by the model against its own candidates."""
    exemplars: int = 3
    """Similar assertions of the project's other tests to retrieve per site (0: none). They
    become candidates of their own, renamed to the site's names, and a format-v2 model reads
    them in its input."""
    report: str | None = None
    """Write a JSON report (one record per site) to this path."""
    isolation: bool = True
    """Run candidates (and the flakiness re-run) in forked children, where their effects
    can't reach the test, later tests or pytest (POSIX only)."""
    timeout: float = 2.0
    """Seconds a site's candidates may run in their child before it is killed (the rest go
    on in a fresh child)."""

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"--suggest-asserts must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.num_beams < 1:
            raise ConfigError(f"--kdassert-beams must be >= 1, got {self.num_beams}")
        if self.batch_size < 1:
            raise ConfigError(f"--kdassert-batch-size must be >= 1, got {self.batch_size}")
        if self.exemplars < 0:
            raise ConfigError(f"--kdassert-exemplars must be >= 0, got {self.exemplars}")
        if self.threads < 0:
            raise ConfigError(f"--kdassert-threads must be >= 0, got {self.threads}")
        if not self.timeout > 0:
            raise ConfigError(f"--kdassert-timeout must be > 0 seconds, got {self.timeout}")
        if not self.model:
            raise ConfigError("--kdassert-model is empty: pass a model directory or `default`")
        if self.report is not None and not self.report.endswith(".json"):
            raise ConfigError(f"--kdassert-report must name a .json file, got {self.report!r}")
