"""The allow-list a candidate must pass before anything runs it.

Candidates are untrusted text (a model, a suggester hook, an exemplar wrote them). Two parts:

* :func:`static_refusal`, at screening: only the node types of a plain check (names,
  literals, comparisons, boolean/unary/binary operators, attribute access without dunders,
  subscripts, containers, comprehensions, f-strings, calls); no lambda, walrus, import; no
  name that reaches the interpreter, files, processes or the network (``exec``, ``open``,
  ``setattr``, ``os``, ``sys``, ``shutil``, ``subprocess``, ...), whatever it is bound to;
  no method that writes or deletes (``write_text``, ``unlink``, ``rmtree``, ...).
* :func:`site_refusal`, at the site, with the test's namespace: every name and dotted module
  path is resolved (module attributes only; no descriptor of the test's objects runs), and a
  function may be used only when it is project code (its file under the rootdir, not the
  standard library or an installed package), one of :data:`SAFE_BUILTINS`, or listed in
  :data:`SAFE_MODULE_CALLS`. Methods of the test's objects and classes are allowed.

Both return the reason as a short phrase, or None when the candidate may run.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import sys
import types
from pathlib import Path

from pytest_kdassert.core.assertions import dotted_name
from pytest_kdassert.core.memo import run_cache
from pytest_kdassert.focal import is_library

SAFE_BUILTINS = frozenset({
    "len", "isinstance", "issubclass", "sorted", "abs", "round", "min", "max", "sum", "any",
    "all", "repr", "ascii", "callable", "hasattr", "getattr", "divmod", "pow", "chr", "ord",
    "format", "bin", "hex", "oct", "hash", "id", "iter", "next", "dir",
})
"""Builtin functions a candidate may call; builtin classes (``list``, ``set``, ``type``,
``ValueError``, ...) are allowed anyway."""

FORBIDDEN_NAMES = frozenset({
    "os", "sys", "shutil", "subprocess", "socket", "builtins", "importlib", "ctypes",
})
"""Module names refused wherever they occur, whatever the test binds them to."""

FORBIDDEN_CALLS = frozenset({
    "exec", "eval", "compile", "open", "setattr", "delattr", "globals", "vars", "locals",
    "breakpoint", "input", "exit", "quit", "help", "__import__",
})
"""Builtins refused when called; as a value the name may be the test's own variable
(``input = [1, 2]``): the site part resolves it (the builtin itself is not allowed there)."""

FORBIDDEN_MODULES = frozenset({
    "os", "sys", "shutil", "subprocess", "socket", "builtins", "importlib", "ctypes", "signal",
    "io", "tempfile", "multiprocessing", "threading", "asyncio", "gc", "inspect", "pickle",
    "marshal", "runpy", "code", "pty", "posix", "nt", "atexit", "resource", "mmap", "urllib",
    "http", "requests", "sqlite3", "webbrowser", "pdb", "faulthandler", "site", "sysconfig",
    "glob", "fcntl", "select", "selectors", "ssl", "ftplib", "smtplib", "telnetlib", "shelve",
    "dbm", "zipfile", "tarfile", "gzip", "bz2", "lzma", "logging", "warnings", "time",
    "_thread", "_posixsubprocess", "posixpath", "ntpath", "shlex", "_io", "_socket",
})
"""Top-level packages a candidate may not touch, under any name the test binds them to
(``time`` too: ``time.sleep`` stalls the run)."""

FORBIDDEN_METHODS = frozenset({
    "write", "writelines", "write_text", "write_bytes", "truncate", "touch", "mkdir",
    "makedirs", "unlink", "rmdir", "removedirs", "rmtree", "rename", "renames",
    "symlink_to", "hardlink_to", "link_to", "chmod", "lchmod", "chown", "kill", "terminate",
    "send_signal", "send", "sendall", "sendto", "sendmsg", "sendfile", "connect", "bind",
    "listen", "accept", "popen", "system", "spawn", "execute", "executemany", "executescript",
    "commit", "flush", "close", "remove", "dump", "save", "savez", "savetxt", "tofile",
    "to_csv", "to_json", "to_parquet", "to_pickle", "to_excel", "to_sql", "to_hdf", "format_map",
    "mro", "f_globals", "f_locals", "f_builtins", "f_back", "gi_frame", "gi_code", "cr_frame",
    "ag_frame", "tb_frame", "tb_next", "co_code",
})
"""Attributes refused on any object: writes, deletes, processes, sockets, frame access."""

ALL = None
SAFE_MODULE_CALLS: dict[str, frozenset[str] | None] = {
    "math": ALL, "cmath": ALL, "statistics": ALL, "itertools": ALL, "string": ALL,
    "pytest": frozenset({"approx"}),
    "re": frozenset({"match", "search", "fullmatch", "findall", "finditer", "sub", "subn",
                     "split", "escape", "compile"}),
    "json": frozenset({"dumps", "loads"}),
    "operator": frozenset({"itemgetter", "attrgetter", "add", "sub", "mul", "truediv",
                           "floordiv", "mod", "neg", "eq", "ne", "lt", "le", "gt", "ge"}),
    "functools": frozenset({"reduce"}),
    "collections": frozenset({"Counter", "OrderedDict", "defaultdict", "deque"}),
    "copy": frozenset({"copy", "deepcopy"}),
    "numpy": frozenset({
        "array", "asarray", "allclose", "isclose", "array_equal", "array_equiv", "all", "any",
        "sum", "mean", "std", "min", "max", "abs", "shape", "ndim", "size", "zeros", "ones",
        "arange", "linspace", "sort", "unique", "round", "isnan", "isinf", "isfinite",
        "count_nonzero", "prod", "argmax", "argmin", "where", "nonzero"}),
    "numpy.testing": ALL, "pandas.testing": ALL,
}
"""Functions of installed modules a candidate may call (``ALL``: every public one)."""

MAX_SHIFT_OR_POWER = 10_000
"""Largest literal right operand of ``**`` and ``<<``: ``10 ** 10 ** 10`` never finishes."""

_ALLOWED_NODES = (
    ast.Assert, ast.Expr, ast.Name, ast.Constant, ast.Compare, ast.BoolOp, ast.UnaryOp,
    ast.BinOp, ast.Attribute, ast.Subscript, ast.Slice, ast.List, ast.Tuple, ast.Set,
    ast.Dict, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.comprehension,
    ast.JoinedStr, ast.FormattedValue, ast.Call, ast.keyword, ast.Starred, ast.IfExp,
    ast.expr_context, ast.operator, ast.boolop, ast.unaryop, ast.cmpop,
)
_NODE_WORDS = {ast.Lambda: "a lambda", ast.NamedExpr: "an assignment expression (:=)",
               ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield"}
_BUILTIN_NAMES = {id(value): name for name, value in vars(builtins).items()}


def static_refusal(stmt: ast.stmt) -> str | None:
    """Why the screened assertion ``stmt`` may not run, from its text alone; None if it may."""
    nodes = list(ast.walk(stmt))
    for node in nodes:
        if not isinstance(node, _ALLOWED_NODES):
            return _NODE_WORDS.get(type(node), f"{type(node).__name__} is not allowed")
    first = [n for n in nodes if isinstance(n, ast.Name)  # the clearest reasons first
             or (isinstance(n, ast.Call) and isinstance(n.func, ast.Name))]
    for node in first + [n for n in nodes if n not in first]:
        reason = _node_refusal(node)
        if reason is not None:
            return reason
    return None


def _node_refusal(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        if _is_dunder(node.id):
            return f"uses the dunder name {node.id}"
        if node.id in FORBIDDEN_NAMES:
            return f"uses {node.id}"
    elif isinstance(node, ast.Call):
        if isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            return f"uses {node.func.id}"
        return _call_refusal(node)
    elif isinstance(node, ast.Attribute):
        if node.attr.startswith("__"):
            return f"uses the dunder attribute .{node.attr}"
        if node.attr in FORBIDDEN_METHODS:
            return f"uses .{node.attr}"
    elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Pow, ast.LShift)):
        right = node.right
        if not (isinstance(right, ast.Constant) and isinstance(right.value, (int, float))
                and abs(right.value) <= MAX_SHIFT_OR_POWER):
            return "a power or shift whose right side is not a small literal"
    return None


def _call_refusal(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name) and func.id in ("getattr", "hasattr"):
        name = call.args[1] if len(call.args) >= 2 else None
        if not (isinstance(name, ast.Constant) and isinstance(name.value, str)
                and not name.value.startswith("__")):
            return f"{func.id} with an attribute name that is not a plain literal"
    if isinstance(func, ast.Attribute) and func.attr == "format" \
            and isinstance(func.value, ast.Constant) and "__" in str(func.value.value):
        return "str.format with a dunder field"
    return None


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


# -- at the site ------------------------------------------------------------------------------
_MISSING = object()


def site_refusal(stmt: ast.stmt, namespace: dict, rootdir: Path | None,
                 project: frozenset[str] = frozenset()) -> str | None:
    """Why ``stmt`` may not run against ``namespace`` (the test's globals and locals).

    ``project``: the project's top-level packages, its code wherever they are installed.

    Only module attributes are looked up (``np.testing.assert_allclose``); the test's own
    objects are never touched, so no property or ``__getattr__`` of theirs runs here.
    """
    for dotted in _dotted_reads(stmt):
        value = _resolve(dotted, namespace)
        reason = _value_refusal(dotted, value, rootdir, project)
        if reason is not None:
            return reason
    return None


@run_cache(maxsize=1 << 16)  # the same candidate trees come back at every site instance
def _dotted_reads(stmt: ast.stmt) -> tuple[str, ...]:
    """The names and dotted names ``stmt`` reads (names first), comprehension variables left
    out, each once."""
    local = _comprehension_names(stmt)
    nodes = [n for n in ast.walk(stmt) if isinstance(n, ast.Name)]
    nodes += [n for n in ast.walk(stmt) if isinstance(n, ast.Attribute)]
    dotted = (dotted_name(node) for node in nodes)
    return tuple(dict.fromkeys(d for d in dotted if d is not None and d.split(".", 1)[0] not in local))


def _comprehension_names(stmt: ast.stmt) -> set[str]:
    return {n.id for node in ast.walk(stmt) if isinstance(node, ast.comprehension)
            for n in ast.walk(node.target) if isinstance(n, ast.Name)}


def _resolve(dotted: str, namespace: dict):
    """The object a dotted name stands for, following module attributes only."""
    head, *rest = dotted.split(".")
    value = namespace.get(head, _MISSING)
    if value is _MISSING:
        value = vars(builtins).get(head, _MISSING)
    for attr in rest:
        if not isinstance(value, types.ModuleType):
            return _MISSING  # an attribute of the test's object: not looked up here
        value = getattr(value, attr, _MISSING)
    return value


def _value_refusal(dotted: str, value, rootdir: Path | None, project: frozenset[str]) -> str | None:
    if value is _MISSING:
        return None
    if isinstance(value, types.ModuleType):
        top = value.__name__.split(".", 1)[0]
        return f"{dotted} is the module {value.__name__}" if top in FORBIDDEN_MODULES else None
    if inspect.isclass(value):
        top = (getattr(value, "__module__", "") or "").split(".", 1)[0]
        forbidden = top in FORBIDDEN_MODULES and top != "builtins"
        return f"{dotted} is a class of {top}" if forbidden else None
    if not _is_function(value):
        return None  # a value of the test: its methods may be called
    if _BUILTIN_NAMES.get(id(value)) in SAFE_BUILTINS or _safe_module_call(value) \
            or is_project_code(value, rootdir, project):
        return None
    return f"{dotted} is not on the allow-list (calls only pure builtins, project code and " \
           "methods of the test's values)"


def _is_function(value) -> bool:
    return isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.MethodType,
                              types.BuiltinMethodType, types.MethodWrapperType,
                              types.WrapperDescriptorType, types.MethodDescriptorType))


def _safe_module_call(value) -> bool:
    for module_name, names in SAFE_MODULE_CALLS.items():
        module = sys.modules.get(module_name)
        if module is None:
            continue
        for name, member in vars(module).items():
            if member is value and not name.startswith("_") and (names is ALL or name in names):
                return True
    return False


def is_project_code(value, rootdir: Path | None, project: frozenset[str] = frozenset()) -> bool:
    """A function or class of the project: in one of its ``project`` packages (wherever they
    are installed), or in a file under ``rootdir`` outside the stdlib and installed packages."""
    target = inspect.unwrap(getattr(value, "__func__", value))
    if not (inspect.isfunction(target) or inspect.isclass(target)):
        return False
    if (getattr(target, "__module__", None) or "").split(".")[0] in project:
        return True
    if is_library(target):
        return False
    try:
        source = inspect.getsourcefile(target)
    except TypeError:
        return False
    if not source:
        return False
    return rootdir is None or Path(source).resolve().is_relative_to(Path(rootdir).resolve())


# -- in the test's process --------------------------------------------------------------------
PLAIN_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes})
PLAIN_CONTAINERS = frozenset({tuple, list, set, frozenset, dict})
MAX_PLAIN_ITEMS = 10_000
"""Values with more items (counted through nesting) are not plain data: comparing or sorting
them could take long, and in-process nothing stops it."""

PLAIN_CALLS = frozenset({
    "len", "sorted", "min", "max", "sum", "abs", "round", "any", "all", "repr", "isinstance",
    "bool", "int", "float", "str", "list", "tuple", "set", "frozenset", "dict", "type",
})
"""Builtins whose call on plain data runs only the interpreter's own code."""

_PLAIN_CALLABLES = {id(vars(builtins)[name]) for name in PLAIN_CALLS}
_PLAIN_NODES = (
    ast.Assert, ast.Name, ast.Constant, ast.Compare, ast.BoolOp, ast.UnaryOp, ast.BinOp,
    ast.Subscript, ast.Slice, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.Call, ast.keyword,
    ast.Load, ast.boolop, ast.unaryop, ast.cmpop, ast.Add, ast.Sub, ast.Div, ast.FloorDiv,
)
"""No attribute (a method or property is code), no ``*``, ``%``, ``**`` (``s * n`` can
allocate gigabytes), no comprehension, f-string or starred argument."""


def runs_only_plain_data(stmt: ast.stmt, namespace: dict) -> bool:
    """Whether ``stmt`` touches nothing but plain data (None, numbers, strings, bytes and
    builtin containers of them, exact types, at most :data:`MAX_PLAIN_ITEMS` items) through
    the interpreter's own operations and :data:`PLAIN_CALLS`.

    Such a candidate runs no code of the test, the project or any library: no ``__eq__``,
    property or ``__len__`` of theirs, no I/O, and it can't change a value. It is safe to
    evaluate in the test's process, which spares the site a forked child. Anything else,
    and every name not bound, says False.
    """
    shape = _plain_shape(stmt)
    return shape is not None and all(
        id(_lookup(name, namespace)) in _PLAIN_CALLABLES for name in shape[0]) and all(
        _plain_name(name, namespace) for name in shape[1])


@run_cache(maxsize=1 << 16)
def _plain_shape(stmt: ast.stmt) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(names called, names read) of a statement made of :data:`_PLAIN_NODES` only, calls
    of plain names only; None for any other."""
    called: dict[str, None] = {}
    read: dict[str, None] = {}
    for node in ast.walk(stmt):
        if not isinstance(node, _PLAIN_NODES):
            return None
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                return None
            called[node.func.id] = None
        if isinstance(node, ast.Name):
            read[node.id] = None
    return tuple(called), tuple(read)


def _plain_name(name: str, namespace: dict) -> bool:
    value = _lookup(name, namespace)
    if value is _MISSING:
        return False
    if id(value) in _PLAIN_CALLABLES:
        return True  # a function or type of PLAIN_CALLS, called or passed (isinstance)
    return is_plain_data(value)


def _lookup(name: str, namespace: dict):
    value = namespace.get(name, _MISSING)
    return vars(builtins).get(name, _MISSING) if value is _MISSING else value


def is_plain_data(value, limit: int = MAX_PLAIN_ITEMS) -> bool:
    """None, numbers, str, bytes, and tuples, lists, sets and dicts of them (exact types:
    a subclass can override ``__eq__``), with at most ``limit`` items in all."""
    stack, seen = [value], 0
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in PLAIN_SCALARS:
            continue
        if kind not in PLAIN_CONTAINERS:
            return False
        seen += len(item)
        if seen > limit:
            return False
        stack.extend(item.keys() if kind is dict else item)
        if kind is dict:
            stack.extend(item.values())
    return True
