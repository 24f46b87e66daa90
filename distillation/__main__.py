"""``python -m distillation`` is the ``kdassert`` command (for machines where it is not installed)."""

from distillation.cli import main

if __name__ == "__main__":
    main(prog_name="kdassert")
