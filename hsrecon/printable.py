"""Text from outside (file names, messages quoting them) made safe to print as one line on a terminal.

A file name may hold any byte but ``/`` and NUL: a newline (so a name can print an ``hsrecon: error:``
line of its own), an escape sequence that moves the cursor or recolours the terminal, a carriage return
that overwrites what came before, Unicode line separators, or bidirectional overrides that show a line
in another order than it is. :func:`printable` writes all of them as visible escapes, the way Python's
``repr`` would, and leaves every other character alone, so ordinary names (accents, CJK, spaces) print
as they are. Bytes that are not UTF-8 (kept by Python as lone surrogates) print as ``\\xNN``.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 controls and DEL, C1 controls, line/paragraph separators, bidirectional embeddings, overrides and
# isolates, the zero-width and invisible formatting characters that can hide text, and lone surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, kept by os.fsdecode's surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``str(text)`` with control and invisible characters escaped, so it prints as the one line it is.

    Text without such characters is returned unchanged (``C:\\photos`` stays as it is); in text with
    them, backslashes are doubled first, so every escape reads back one way.
    """
    text = str(text)
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(_escape, text.replace("\\", "\\\\"))
