"""Atomic file writes: the user's tree is never left half-written.

Data files, manifests and reports go through ``atomic_write``: the text is written to a
temporary file beside the target and renamed over it only when complete. SIGTERM, SIGHUP
and SIGINT that arrive inside that window are held back until the rename (or the clean-up)
is done and then delivered as usual, so a killed run leaves neither a half-written file nor
a stray ``.tmp`` file (in the main thread; other threads can't change signal handlers).

Existing files the user owns (rewritten test files) go through :func:`replace_file`, which
also refuses read-only files, writes through symbolic links to the real file and keeps hard
links (see its docstring for the one trade-off).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import tempfile
import threading
from pathlib import Path

from pytest_kdassert.core.errors import UnwritableFileError

HELD_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGINT")
                     if hasattr(signal, name))
"""Signals held back during a write window (those that exist on this platform)."""


@contextlib.contextmanager
def signals_held():
    """Hold back :data:`HELD_SIGNALS` inside the block; deliver any that came when it ends.

    A no-op outside the main thread (and for a signal whose handler was installed outside
    Python). A signal that arrives is re-raised after the previous handlers are back, so the
    default action (or the program's own handler) still happens, only a moment later.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    # a handler installed outside Python reads as None and could not be put back: left alone
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
                for sig in HELD_SIGNALS if signal.getsignal(sig) is not None}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(caught):
            signal.raise_signal(sig)


class atomic_write:  # noqa: N801 - used like open()
    """Context manager: write to a temp file beside ``path``, rename over it on success.

    On any exception (KeyboardInterrupt included) the temp file is removed and ``path`` is
    untouched. An existing file keeps its permission bits; a new one gets the umask's.
    Signals are held back from entry to exit (see :func:`signals_held`).
    """

    def __init__(self, path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8",
                 newline: str | None = None):
        self.path = Path(path)
        self.mode = mode
        self.encoding = None if "b" in mode else encoding
        self.newline = None if "b" in mode else newline

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._signals = signals_held()
        self._signals.__enter__()
        try:
            fd, self._tmp = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
            )
            self._handle = os.fdopen(fd, self.mode, encoding=self.encoding, newline=self.newline)
        except BaseException:
            self._signals.__exit__(None, None, None)
            raise
        return self._handle

    def __exit__(self, exc_type, exc, tb):
        try:
            self._finish(exc_type is None)
        finally:
            self._signals.__exit__(None, None, None)
        return False

    def _finish(self, success: bool) -> None:
        try:
            self._handle.close()
            if success:
                if self.path.exists():
                    shutil.copymode(self.path, self._tmp)
                else:  # mkstemp creates 0600; a new file gets the usual umask-based mode
                    os.chmod(self._tmp, 0o666 & ~_current_umask())
                os.replace(self._tmp, self.path)
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str, newline: str | None = "") -> None:
    """Replace ``path``'s content with ``text`` in one rename (``newline=""`` keeps line endings)."""
    with atomic_write(path, newline=newline) as handle:
        handle.write(text)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Binary counterpart of :func:`write_text_atomic`."""
    with atomic_write(path, mode="wb") as handle:
        handle.write(data)


def unwritable_reason(path: str | os.PathLike) -> str | None:
    """Why kdassert must not rewrite the existing file ``path``, or None when it may.

    Read-only mode bits are respected even where the process could write anyway (root,
    CAP_DAC_OVERRIDE): a file without any ``w`` bit was made read-only on purpose.
    """
    real = os.path.realpath(path)
    try:
        mode = os.stat(real).st_mode
    except OSError as exc:
        return f"it cannot be inspected ({exc.strerror})"
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        return (f"it is read-only (mode {stat.filemode(mode)}); kdassert leaves read-only files "
                f"alone: run `chmod u+w {path}` to let it write")
    if not os.access(real, os.W_OK):
        return "you have no write permission on it"
    if not os.access(os.path.dirname(real) or ".", os.W_OK | os.X_OK):
        return (f"its directory {os.path.dirname(real)} is not writable (kdassert writes a "
                "temporary file beside it first)")
    return None


def replace_file(path: str | os.PathLike, data: bytes) -> None:
    """Give the existing file ``path`` new content, keeping what makes it that file.

    - a read-only file (or one the user may not write) raises UnwritableFileError;
    - a symbolic link is followed: the real file gets the content, the link stays a link;
    - a file with one link is replaced atomically (temp file + rename; mode bits kept);
    - a hard-linked file (``st_nlink > 1``) is rewritten in place so every link sees the new
      content: the new bytes are first written and flushed to a temp file beside it (a full
      disk fails there, before the file is touched), then copied into the file with signals
      held back, then the temp file is removed. Trade-off: that copy is not atomic, so a
      power cut or SIGKILL during it can leave the file partly written; the temp copy then
      still holds the new content, and an OSError during the copy names it.
    """
    reason = unwritable_reason(path)
    if reason is not None:
        raise UnwritableFileError(f"{path}: {reason}")
    real = Path(os.path.realpath(path))
    if os.stat(real).st_nlink > 1:
        _rewrite_in_place(real, data)
    else:
        write_bytes_atomic(real, data)


def _rewrite_in_place(real: Path, data: bytes) -> None:
    with signals_held():
        fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            os.unlink(tmp)
            raise
        try:
            with open(real, "r+b") as handle:
                handle.write(data)
                handle.truncate()
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise UnwritableFileError(
                f"{real}: writing in place failed ({exc.strerror}); the new content is in {tmp}"
            ) from exc
        os.unlink(tmp)
