"""Python source files as the interpreter reads them: bytes <-> text by PEP 263.

A test file is decoded with the encoding Python itself would use (a UTF-8 BOM, else a
``# -*- coding: ... -*-`` cookie in the first two lines, else UTF-8; see
``tokenize.detect_encoding``) and written back in that same encoding, BOM included, so a
file Python can import is a file kdassert can read and rewrite without changing its bytes
beyond the edit. Line endings are left as they are.
"""

from __future__ import annotations

import io
import tokenize
from dataclasses import dataclass


@dataclass(frozen=True)
class PythonText:
    """A source file's text and the codec it was stored in."""

    text: str
    """Decoded text, without a BOM, line endings untouched."""
    encoding: str
    """Codec name from ``tokenize.detect_encoding`` (``utf-8-sig`` means a BOM)."""
    data: bytes
    """The bytes read, to tell whether the file changed since."""


def decode_python(data: bytes) -> PythonText:
    """Decode source bytes as Python does; ValueError (with the reason) when it can't."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        if not exc.msg.startswith("invalid or missing"):  # unknown codec, BOM + other cookie
            raise ValueError(f"its encoding declaration is invalid ({exc.msg})") from exc
        encoding = "utf-8"  # no cookie and a first line that isn't UTF-8: say where below
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ValueError(f"its bytes are not valid {encoding} (byte {data[exc.start]:#04x} at "
                         f"offset {exc.start})") from exc
    return PythonText(text, encoding, data)


def encode_python(text: str, encoding: str) -> bytes:
    """Encode text for a file stored in ``encoding`` (``utf-8-sig`` writes the BOM back).

    ValueError when the text holds characters the encoding cannot store.
    """
    try:
        return text.encode(encoding)
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start:exc.end]
        raise ValueError(f"the new text has {bad!r}, which {encoding} cannot store; add "
                         "the assertion by hand or convert the file to UTF-8") from exc


def read_python(path) -> PythonText:
    """Read and decode a source file (OSError or ValueError when it can't be)."""
    with open(path, "rb") as handle:
        return decode_python(handle.read())
