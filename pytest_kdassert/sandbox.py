"""Run untrusted work in a forked child: a pipe back, a time limit, and no effects outside it.

* :func:`run_forked` runs ``work(task)`` for each task in a child forked from the current
  state of the process and yields each JSON result as it arrives. A task that runs past the
  time limit is killed (``timeout``), one that ends the child (``os._exit``, a signal) or
  raises ``KeyboardInterrupt``/``SystemExit`` is reported (``crashed``); the remaining tasks
  go on in a fresh child with a fresh limit, as they do after a :class:`Dirty` result. Each
  task runs at most once.
* :class:`Standby` forks now and waits: :meth:`~Standby.go` makes the child run a job on the
  state of the moment it was forked, :meth:`~Standby.dismiss` ends it.

Children ignore SIGINT (a real Ctrl-C reaches the parent, which kills the child and goes on
raising), write fd 1/2 and ``sys.stdout``/``sys.stderr`` to ``/dev/null``, run under an
address-space limit, log nothing (for candidates: a handler may hold an open file), collect no garbage
(no finalizer of the parent's objects runs there) and install :func:`install_guard`, an audit
hook that refuses writes, deletes, new processes, sockets and (for candidates) new code. They
leave with ``os._exit``: no atexit handler, no buffered output of the parent is flushed twice.
Results travel as JSON, so the parent never unpickles what a child sends.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import select
import signal
import struct
import sys
import time
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

AVAILABLE = hasattr(os, "fork")
"""Process isolation needs ``os.fork`` (POSIX)."""

CODE_FILENAME = "<kdassert-candidate>"
"""Only code compiled under this file name may run (``exec``/``eval``) in a guarded child;
compiling (``ast.parse`` too) is allowed, running anything else is not."""

MEMORY_HEADROOM = 4 << 30
"""Address space a child may add to what the parent had (RLIMIT_AS), where settable."""

_REAL = types.SimpleNamespace(
    pipe=os.pipe, read=os.read, write=os.write, close=os.close, fork=os.fork if AVAILABLE else None,
    waitpid=os.waitpid if hasattr(os, "waitpid") else None, kill=os.kill, exit=os._exit,
    open=os.open, dup2=os.dup2, sysconf=getattr(os, "sysconf", None), open_file=open,
    select=select.select, monotonic=time.monotonic)
"""The OS calls of the sandbox's own plumbing (pipes, forks, deadlines), as they were when
kdassert loaded. A test may fake or patch them while it runs (pyfakefs swaps the ``os`` that
modules imported for a fake one whose ``pipe`` makes fake descriptors; freezegun stops the
clocks; monkeypatch sets any attribute): the plumbing that contains the candidates must not
follow. Kept in a namespace, where such patchers do not look."""

monotonic = _REAL.monotonic
"""The clock of time limits (a test may freeze ``time``)."""
_DEVNULL, _O_RDWR, _WNOHANG = os.devnull, os.O_RDWR, getattr(os, "WNOHANG", 1)
_HEADER = struct.Struct(">I")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_REFUSED_PREFIXES = ("os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.kill", "os.killpg",
                     "os.remove", "os.rmdir", "os.rename", "os.mkdir", "os.chmod", "os.chown",
                     "os.chflags", "os.link", "os.symlink", "os.truncate", "os.utime",
                     "os.setxattr", "os.removexattr", "os.system",
                     "os.startfile", "shutil.", "subprocess.", "pty.", "socket.", "ctypes.",
                     "signal.pthread_kill", "sqlite3.", "webbrowser.", "urllib.", "http.",
                     "ftplib.", "smtplib.", "nntplib.", "poplib.", "imaplib.", "telnetlib.",
                     "winreg.", "msvcrt.", "syslog.")
_REFUSED_CODE = ("exec", "code.__new__")


class SandboxRefusal(PermissionError):
    """Raised inside a child by the audit hook for an operation that would leave it."""


@dataclass(frozen=True)
class Failure:
    """A task that produced no result: ``timeout`` or ``crashed``, and what happened."""

    kind: str
    detail: str


@dataclass(frozen=True)
class Dirty:
    """A task's result after which the child's state can't be trusted (the task changed
    what later tasks would see): the remaining tasks go on in a fresh child."""

    value: object


class Guard:
    """The audit hook's state in a child: what it refused (for the caller's verdict)."""

    def __init__(self, refuse_code: bool):
        self.refuse_code = refuse_code
        self.refused: list[str] = []

    def __call__(self, event: str, args: tuple) -> None:
        if self._refuses(event, args):
            self.refused.append(event)
            raise SandboxRefusal(f"kdassert sandbox refused {event}")

    def _refuses(self, event: str, args: tuple) -> bool:
        if event == "open":
            mode, flags = (args + (None, None, None))[1:3]
            return bool((isinstance(mode, str) and set(mode) & set("wax+"))
                        or (isinstance(flags, int) and flags & _WRITE_FLAGS))
        if event.startswith(_REFUSED_PREFIXES):
            return True
        if self.refuse_code and event in _REFUSED_CODE:
            return _code_filename(event, args) != CODE_FILENAME
        return False


def _code_filename(event: str, args: tuple) -> str | None:
    if event == "exec":
        return getattr(args[0], "co_filename", None) if args else None
    return None


def install_guard(refuse_code: bool) -> Guard:
    """Install the audit hook (for good: only ever call this in a child)."""
    guard = Guard(refuse_code)
    sys.addaudithook(guard)
    return guard


class Reaper:
    """Children killed but not yet waited for. Tearing down a child takes a few milliseconds;
    reaped later, it happens beside the tests rather than in their way. :meth:`close` waits
    for the rest (call it at the end of the session)."""

    def __init__(self):
        self.pids: list[int] = []

    def add(self, pid: int) -> None:
        self.pids.append(pid)
        self.pids = [p for p in self.pids if not _reaped(p, _WNOHANG)]

    def close(self) -> None:
        for pid in self.pids:
            _reaped(pid, 0)
        self.pids = []


def _reaped(pid: int, options: int) -> bool:
    try:
        return _REAL.waitpid(pid, options)[0] != 0
    except ChildProcessError:
        return True  # someone else (an os.wait() in a test) reaped it


def run_forked(tasks: Sequence, work: Callable[[object], object], timeout: float,
               refuse_code: bool = True, reaper: Reaper | None = None
               ) -> Iterator[tuple[object, object]]:
    """Yield ``(task, result or Failure)`` for each task, in order, from forked children."""
    start = 0
    while start < len(tasks):
        pending = tasks[start:]
        child = _Child(lambda send, todo=pending: _serve(todo, work, send, refuse_code), reaper)
        deadline = _REAL.monotonic() + timeout
        try:
            for task in pending:
                start += 1
                got = child.receive(deadline, timeout)
                yield task, got.value if isinstance(got, Dirty) else got
                if isinstance(got, (Failure, Dirty)):
                    break
        finally:
            child.stop()


def _serve(tasks: Sequence, work, send, refuse_code: bool) -> None:
    install_guard(refuse_code)
    for task in tasks:
        try:
            result = work(task)
        except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt, SystemExit, ...
            send({"raised": type(exc).__name__})
            return
        if isinstance(result, Dirty):
            send({"result": result.value, "dirty": True})
            return
        send({"result": result})


class Standby:
    """A child forked now that waits for :meth:`go` (run ``job`` on the state of now)."""

    def __init__(self, job: Callable[[object, Guard], object], refuse_code: bool = False,
                 reaper: Reaper | None = None):
        control_read, self._control = _REAL.pipe()
        control_write = self._control

        def body(send) -> None:
            _REAL.close(control_write)
            message = _read_until_eof(control_read)
            if message:
                guard = install_guard(refuse_code)
                send({"result": job(json.loads(message), guard)})

        self._child = _Child(body, reaper, quiet=False)  # the test's logging runs as it would
        _REAL.close(control_read)

    def go(self, payload, timeout: float):
        """The job's result for ``payload``, or a :class:`Failure`."""
        with contextlib.suppress(OSError):  # the child is gone: receive reports how
            _REAL.write(self._control, json.dumps(payload).encode())
        _REAL.close(self._control)
        self._control = None
        try:
            return self._child.receive(_REAL.monotonic() + timeout, timeout)
        finally:
            self._child.stop()

    def dismiss(self) -> None:
        if self._control is not None:
            _REAL.close(self._control)
            self._control = None
        self._child.stop()


def _read_until_eof(fd: int) -> bytes:
    chunks = []
    while chunk := _REAL.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


class _Child:
    """One forked child running ``body(send)``; the parent reads what it sends."""

    def __init__(self, body: Callable, reaper: Reaper | None = None, quiet: bool = True):
        self.reaper = reaper
        read_fd, write_fd = _REAL.pipe()
        limit = _memory_limit()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
            pid = _REAL.fork()
        if pid == 0:
            _REAL.close(read_fd)
            _child_main(body, write_fd, limit, quiet)
        _REAL.close(write_fd)
        self.pid: int | None = pid
        self.fd: int | None = read_fd
        self.buffer = b""

    def receive(self, deadline: float, timeout: float):
        while True:
            message = self._next_message()
            if message is not None:
                return message
            remaining = deadline - _REAL.monotonic()
            if remaining <= 0 or not _REAL.select([self.fd], [], [], remaining)[0]:
                if _REAL.monotonic() >= deadline:
                    self.stop()
                    return Failure("timeout", f"ran over the {timeout:g} s time limit")
                continue
            chunk = _REAL.read(self.fd, 65536)
            if not chunk:
                return Failure("crashed", self._ended())
            self.buffer += chunk

    def _next_message(self):
        if len(self.buffer) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self.buffer)
        if len(self.buffer) < _HEADER.size + size:
            return None
        data = self.buffer[_HEADER.size:_HEADER.size + size]
        self.buffer = self.buffer[_HEADER.size + size:]
        try:
            message = json.loads(data)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            self.stop()
            return Failure("crashed", "the child sent an unreadable result")
        if "raised" in message:
            return Failure("crashed", f"raised {message['raised']}")
        if message.get("dirty"):
            return Dirty(message.get("result"))
        return message.get("result")

    def _ended(self) -> str:
        _, status = _REAL.waitpid(self.pid, 0)
        self.pid = None
        if os.WIFSIGNALED(status):
            return f"the process was killed by signal {os.WTERMSIG(status)}"
        return f"the process exited with status {os.waitstatus_to_exitcode(status)}"

    def stop(self) -> None:
        """Kill the child (if it still runs), reap it now or through the reaper, close the pipe."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                _REAL.kill(self.pid, signal.SIGKILL)
            if self.reaper is not None:
                self.reaper.add(self.pid)
            else:
                _reaped(self.pid, 0)
            self.pid = None
        if self.fd is not None:
            _REAL.close(self.fd)
            self.fd = None


def _child_main(body: Callable, write_fd: int, memory_limit: int | None, quiet: bool) -> None:
    """The child's whole life: never returns."""
    status = 0
    try:
        _enter_child(memory_limit, quiet)
        body(lambda message: _send(write_fd, message))
    except BaseException:  # noqa: BLE001 - the parent sees a crash; nothing may escape
        status = 70
    finally:
        _REAL.exit(status)


def _enter_child(memory_limit: int | None, quiet: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.disable()
    if quiet:
        logging.disable(logging.CRITICAL)  # handlers may hold open files (--log-file)
    null = _REAL.open(_DEVNULL, _O_RDWR)
    for fd in (0, 1, 2):
        _REAL.dup2(null, fd)
    sys.stdin = _REAL.open_file(_DEVNULL)  # noqa: SIM115 - lives as long as the child
    sys.stdout = sys.stderr = _REAL.open_file(_DEVNULL, "w")  # noqa: SIM115
    if memory_limit is not None:
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
        except (ImportError, ValueError, OSError):
            pass


def _memory_limit() -> int | None:
    try:
        with _REAL.open_file("/proc/self/statm") as statm:
            pages = int(statm.read().split()[0])
        return pages * _REAL.sysconf("SC_PAGE_SIZE") + MEMORY_HEADROOM
    except (OSError, ValueError, IndexError):
        return None


def _send(fd: int, message: dict, dumps=json.dumps, size=len, write=_REAL.write) -> None:
    """Frame and write one message (bound at import: a task may patch json or builtins)."""
    try:
        data = dumps(message).encode()
    except (TypeError, ValueError) as exc:
        data = dumps({"raised": f"unserialisable result ({exc})"}).encode()
    view = memoryview(_HEADER.pack(size(data)) + data)
    while view:
        view = view[write(fd, view):]
