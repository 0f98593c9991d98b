"""Log text made safe for a terminal.

Log text comes from step code, and step code prints whatever it is given (a
file name scanned by ``index-files`` is enough). A terminal obeys control
sequences: OSC 0 sets the window title, OSC 8 makes hyperlinks, OSC 52 writes
the clipboard, ``CSI 2J`` clears the screen, cursor movement and a bare CR
rewrite lines already printed. So every control character is shown, not
obeyed: C0 controls become their Unicode pictures (ESC is ``␛``, CR ``␍``),
DEL is ``␡`` and C1 controls (8-bit CSI is U+009B) are spelled ``\\x9b``.
Only ``\\n`` and ``\\t`` pass, and SGR colour sequences (``ESC [ … m``), which
can do nothing but colour, are kept when colour is on and dropped when off.
"""

from __future__ import annotations

import os
import re
from typing import TextIO

COLOR_CHOICES = ("auto", "always", "never")
RESET = "\x1b[0m"

_SGR = re.compile(r"\x1b\[[0-9;:]*m")
_VISIBLE = {
    **{c: chr(0x2400 + c) for c in range(0x20) if chr(c) not in "\n\t"},
    0x7F: "\u2421",
    **{c: f"\\x{c:02x}" for c in range(0x80, 0xA0)},
}


def for_terminal(text: str, colour: bool) -> str:
    """``text`` with every control character visible; SGR colours kept only
    when ``colour`` (and then reset at the end, so colour never leaks into
    what is printed next)."""
    parts = _SGR.split(text)
    shown = [part.translate(_VISIBLE) for part in parts]
    if not colour or len(parts) == 1:
        return "".join(shown)
    sequences = _SGR.findall(text)
    out = [shown[0]]
    for sequence, part in zip(sequences, shown[1:], strict=True):
        out += [sequence, part]
    return "".join(out) + RESET


def use_colour(choice: str, stream: TextIO) -> bool:
    """``--color``: ``always``, ``never``, or ``auto`` (colour only on a
    terminal, and not when ``NO_COLOR`` is set)."""
    if choice not in COLOR_CHOICES:
        raise ValueError(f"colour must be one of {', '.join(COLOR_CHOICES)}, got {choice!r}")
    if choice == "auto":
        return stream.isatty() and not os.environ.get("NO_COLOR")
    return choice == "always"
