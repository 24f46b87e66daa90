"""Atomic file writes: the user's tree is never left half-written.

Data files, manifests and rewritten test files all go through ``atomic_write``: the text is
written to a temporary file beside the target and renamed over it only when complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


class atomic_write:  # noqa: N801 - used like open()
    """Context manager: write to a temp file beside ``path``, rename over it on success.

    On any exception (KeyboardInterrupt included) the temp file is removed and ``path`` is
    untouched. An existing file keeps its permission bits; a new one gets the umask's.
    """

    def __init__(self, path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8",
                 newline: str | None = None):
        self.path = Path(path)
        self.mode = mode
        self.encoding = None if "b" in mode else encoding
        self.newline = None if "b" in mode else newline

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        self._handle = os.fdopen(fd, self.mode, encoding=self.encoding, newline=self.newline)
        return self._handle

    def __exit__(self, exc_type, exc, tb):
        try:
            self._handle.close()
            if exc_type is None:
                if self.path.exists():
                    shutil.copymode(self.path, self._tmp)
                else:  # mkstemp creates 0600; a new file gets the usual umask-based mode
                    os.chmod(self._tmp, 0o666 & ~_current_umask())
                os.replace(self._tmp, self.path)
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)
        return False


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
