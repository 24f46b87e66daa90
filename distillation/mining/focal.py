"""The miner's symbol table for the shared focal rule (:mod:`pytest_kdassert.core.focal`).

A test's names are resolved statically, through the test module's imports, to definitions in
the project's non-test code (:class:`~distillation.mining.symbols.ProjectIndex`); ``self.x``
gets the class set up in ``setUp``/``setup_method`` or by a fixture.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from distillation.mining.symbols import ProjectIndex
from pytest_kdassert.core.focal import Definition, FocalMatch, FocalResolver


@dataclass
class TestScope:
    """What a test function can see: module imports, ``self.x`` types, statement order.

    Implements :class:`pytest_kdassert.core.focal.Symbols`.
    """

    __test__ = False  # not a pytest test class, despite the name

    index: ProjectIndex
    imports: dict[str, str]
    statements: list[ast.stmt]
    """Simple statements of the test body in source order (``flatten_statements``)."""
    attr_types: dict[str, Definition] = field(default_factory=dict)
    """Class of ``self.<attr>`` assigned in ``setUp``/``setup_method``."""

    def resolver(self) -> FocalResolver:
        return FocalResolver(self, self.statements)

    def resolve(self, dotted: str) -> Definition | None:
        head, _, rest = dotted.partition(".")
        target = self.imports.get(head)
        if target is None:
            return self._from_star(dotted)
        return self.index.resolve(f"{target}.{rest}" if rest else target)

    def _from_star(self, dotted: str) -> Definition | None:
        for key, module in self.imports.items():
            if key.startswith("*"):
                found = self.index.resolve(f"{module}.{dotted}")
                if found is not None:
                    return found
        return None

    def member(self, cls: Definition, attr: str) -> Definition | None:
        return self.index.member(cls, attr)

    def attr_type(self, name: str) -> Definition | None:
        return self.attr_types.get(name)

    def owner(self, method: Definition) -> Definition | None:
        return self.index.resolve(method.qualname.rpartition(".")[0])


def last_call_baseline(scope: TestScope, position: int) -> FocalMatch | None:
    """The prototype's rule, for comparison: the last resolvable call before the assertion."""
    return scope.resolver().last_call_before(position)
