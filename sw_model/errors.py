"""The one exception type for bad input (a bad file, flag, trace line or value), and the
helpers that read input files and quote what they hold in messages.

The command line turns an InputError into one line on stderr and exit status 2.
"""

from __future__ import annotations

import json
from contextlib import contextmanager

__all__ = ["InputError", "show_value", "decode_utf8", "open_input", "reading"]

#: about how much of a bad value a message quotes
SHOW_LIMIT = 60


class InputError(Exception):
    """Bad input from the user. ``str(err)`` is the whole one-line message."""


class _Full(Exception):
    pass


def show_value(value, limit: int = SHOW_LIMIT) -> str:
    """A value read from a YAML or JSON file as such a file spells it (``true``, ``null``,
    ``"text"``, ``[1, 2]``), cut to about ``limit`` characters. Never formats more than
    that, whatever the value's size (a huge number is described by its bit length)."""
    out: list[str] = []
    size = 0

    def emit(text: str) -> None:
        nonlocal size
        out.append(text)
        size += len(text)
        if size > limit:
            raise _Full

    def walk(v, depth: int) -> None:
        if depth > 8:
            emit("...")
        elif isinstance(v, bool):
            emit("true" if v else "false")
        elif v is None:
            emit("null")
        elif isinstance(v, int):
            emit(str(v) if v.bit_length() <= 256 else
                 f"{'-' if v < 0 else ''}<a number of {abs(v).bit_length()} bits>")
        elif isinstance(v, str):
            emit(json.dumps(v[:limit + 1], ensure_ascii=False))
        elif isinstance(v, (list, tuple)):
            emit("[")
            for i, item in enumerate(v):
                emit(", " if i else "")
                walk(item, depth + 1)
            emit("]")
        elif isinstance(v, dict):
            emit("{")
            for i, (k, item) in enumerate(v.items()):
                emit(", " if i else "")
                walk(k, depth + 1)
                emit(": ")
                walk(item, depth + 1)
            emit("}")
        else:
            emit(str(v)[:limit + 1])

    try:
        walk(value, 0)
    except _Full:
        pass
    text = "".join(out)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def decode_utf8(data: bytes, where: str, first_line: int = 1) -> str:
    """``data`` as text; a byte that is not UTF-8 is bad input named by line and column
    (``where`` is the file, ``first_line`` the line ``data`` starts at)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = first_line + data.count(b"\n", 0, err.start)
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise InputError(f"{where}:{line}: column {column}: byte 0x{data[err.start]:02x} is "
                         "not UTF-8 (the file must be UTF-8 text)") from None


def open_input(path, what: str):
    """``path`` opened for binary reading, or bad input saying why not (missing, a
    directory, unreadable); ``what`` names what the file should have been."""
    with reading(path, what):
        return open(path, "rb")


@contextmanager
def reading(path, what: str):
    """Turn the OS errors of opening or reading ``path`` into bad input."""
    try:
        yield
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not {what}") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read: {err.strerror or err}") from None
