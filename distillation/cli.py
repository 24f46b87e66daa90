"""The ``kdassert`` command line: thin click commands over the library.

Each command parses options, builds a ``*Config`` object and calls one library function.
Library errors (``KdassertError``) become clean one-line messages, never tracebacks.
"""

from __future__ import annotations

import logging

import click

from distillation import __version__
from distillation.errors import KdassertError


class _KdassertGroup(click.Group):
    """A click group that reports library errors as ``Error: <message>`` with exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KdassertError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_KdassertGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", count=True, help="Less log output.")
@click.version_option(__version__, prog_name="kdassert")
def main(verbose: int, quiet: int) -> None:
    """Mine assertion data, train a teacher, distil a small student, and benchmark it.

    \b
    Typical pipeline:
      kdassert mine --corpus default -o data/       # build the dataset
      kdassert train --data data/ -o runs/          # tokenizer, teacher, logits, student
      kdassert bench --data data/test.jsonl --model runs/student/final
    """
    level = logging.WARNING - 10 * verbose + 10 * quiet
    logging.basicConfig(level=max(logging.DEBUG, level), format="%(levelname)s %(name)s: %(message)s")


# --- mining commands (issue: mining) -------------------------------------------------------

# --- training commands (issue: train) ------------------------------------------------------

# --- benchmark commands (issue: bench) -----------------------------------------------------
