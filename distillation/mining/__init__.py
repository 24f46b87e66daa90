"""``kdassert mine``: (focal function, masked test, assertion) examples from Python projects.

sources (fetch + unpack) -> discover (test files/functions) -> extract (masking) with focal
(data-flow focal resolution over the symbols index and fixtures) -> splits/report -> mine.
"""
