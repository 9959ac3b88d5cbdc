"""The JSON Lines trace format of interfaces.md section 3: parsing, checking, writing.

A trace is a list of :class:`Op`. Parsing validates every field against the geometry and
raises :class:`InputError` naming the file and line; writing goes through a temporary file so
that a failed run never leaves half a trace behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from loongtlb.sw_model.csr import ACCESSES, CSR_NAMES, EXC_NAMES
from loongtlb.sw_model.errors import InputError, decode_utf8, open_input, reading, show_value
from loongtlb.sw_model.geometry import Geometry

__all__ = ["Op", "OPS", "EXPECT_KEYS", "OUTPUT_CSRS", "parse_trace", "load_trace", "format_op",
           "write_lines", "result_to_expect", "check_expect"]

#: op -> required fields (besides the optional cpu, expect, and port for translate)
OPS = {
    "csrwr": ("csr", "value"),
    "csrrd": ("csr",),
    "tlbsrch": (), "tlbrd": (), "tlbwr": (), "tlbfill": (), "tlbclr": (), "tlbflush": (),
    "invtlb": ("inv_op", "asid", "va"),
    "translate": ("va", "access"),
    "ertn": (),
}
_INSN = ("illegal", "multi_hit")
#: instruction -> the CSRs it writes, which its result reports (read after it)
OUTPUT_CSRS = {"tlbsrch": ("TLBIDX",),
               "tlbrd": ("TLBIDX", "TLBEHI", "TLBELO0", "TLBELO1", "ASID")}
#: op -> the keys its expect may hold (csrrd's expect is a bare number)
EXPECT_KEYS = {
    "tlbsrch": _INSN + OUTPUT_CSRS["tlbsrch"],
    "tlbrd": _INSN + OUTPUT_CSRS["tlbrd"],
    "tlbwr": _INSN, "tlbclr": _INSN, "tlbflush": _INSN, "invtlb": _INSN,
    "tlbfill": _INSN + ("slot",),
    "translate": ("exc", "pa", "mat", "multi_hit"),
}
_BOOL_KEYS = ("illegal", "multi_hit")
MAX_CPUS = 64


@dataclass
class Op:
    """One TLB-level operation. ``args`` holds the op's fields (csr, value, inv_op, asid, va,
    access, port); ``expect`` is None or what the trace expects; ``line`` is its line."""

    kind: str
    args: dict = field(default_factory=dict)
    cpu: int = 0
    expect: object = None
    line: int = 0


def _number(value, where: str, bits: int | None, what: str) -> int:
    """A number field: a JSON integer or a "0x..." string, non-negative, in ``bits`` bits
    (None: any size, the caller checks the range)."""
    if isinstance(value, bool):
        raise InputError(f"{where}: {what}: expected a number, got {show_value(value)}")
    if isinstance(value, str):
        try:
            if not value.lower().startswith("0x") or len(value) > MAX_DIGITS:
                raise ValueError
            value = int(value, 16)
        except ValueError:
            raise InputError(f"{where}: {what}: {show_value(value)} is not a number "
                             "(use a JSON integer or a \"0x...\" string)") from None
    if not isinstance(value, int):
        raise InputError(f"{where}: {what}: expected a number, got {show_value(value)}")
    if value < 0:
        raise InputError(f"{where}: {what}: {show_value(value)} is negative")
    if bits is not None and value >> bits:
        shown = f"0x{value:x}" if value.bit_length() <= 128 else show_value(value)
        raise InputError(f"{where}: {what}: {shown} does not fit in {bits} bits")
    return value


def _parse_expect(kind: str, expect, where: str, geom: Geometry):
    if kind == "csrrd":
        return _number(expect, where, geom.grlen, "expect")
    if kind not in EXPECT_KEYS:
        raise InputError(f"{where}: expect: {kind} has no results to expect")
    if not isinstance(expect, dict):
        raise InputError(f"{where}: expect: expected an object, got {show_value(expect)}")
    out = {}
    for key, value in expect.items():
        if key not in EXPECT_KEYS[kind]:
            raise InputError(f"{where}: expect: unknown key {show_value(key)} for {kind}")
        if key in _BOOL_KEYS:
            if not isinstance(value, bool):
                raise InputError(f"{where}: expect.{key}: expected true or false, "
                                 f"got {show_value(value)}")
        elif key == "exc":
            if value not in EXC_NAMES:
                raise InputError(f"{where}: expect.exc: unknown exception {show_value(value)} "
                                 f"(one of {' '.join(EXC_NAMES)})")
        else:
            value = _number(value, where, geom.grlen, f"expect.{key}")
        out[key] = value
    return out


def parse_line(obj, where: str, geom: Geometry, line: int = 0) -> Op:
    """Validate one decoded trace line."""
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object, got {show_value(obj)}")
    kind = obj.get("op")
    if kind is None:
        raise InputError(f"{where}: missing field \"op\"")
    if not isinstance(kind, str) or kind not in OPS:
        raise InputError(f"{where}: unknown op {show_value(kind)} "
                         f"(one of {' '.join(OPS)})")
    allowed = {"op", "cpu", "expect", *OPS[kind]} | ({"port"} if kind == "translate" else set())
    for key in obj:
        if key not in allowed:
            raise InputError(f"{where}: {kind}: unknown field {show_value(key)}")
    for key in OPS[kind]:
        if key not in obj:
            raise InputError(f"{where}: {kind}: missing field \"{key}\"")
    args = {}
    if "csr" in obj:
        if obj["csr"] not in CSR_NAMES:
            raise InputError(f"{where}: {kind}: unknown CSR {show_value(obj['csr'])}")
        args["csr"] = obj["csr"]
    for key, bits in (("value", geom.grlen), ("va", geom.grlen), ("asid", 10), ("inv_op", 5)):
        if key in obj:
            args[key] = _number(obj[key], where, bits, key)
    if kind == "translate":
        if obj["access"] not in ACCESSES:
            raise InputError(f"{where}: translate: access must be load, store or fetch, "
                             f"got {show_value(obj['access'])}")
        args["access"] = obj["access"]
        port = _number(obj.get("port", 0), where, 16, "port")
        if port >= geom.lookup_ports:
            raise InputError(f"{where}: translate: port {port} does not exist "
                             f"({geom.lookup_ports} lookup ports)")
        args["port"] = port
    cpu = _number(obj.get("cpu", 0), where, None, "cpu")
    if cpu >= MAX_CPUS:
        raise InputError(f"{where}: cpu: {show_value(cpu)} is more than this tool runs (at "
                         f"most {MAX_CPUS} CPUs, 0 to {MAX_CPUS - 1})")
    expect = None
    if "expect" in obj:
        expect = _parse_expect(kind, obj["expect"], where, geom)
    return Op(kind, args, cpu, expect, line)


#: the longest trace line taken (a line the tools write is under 400 bytes)
MAX_LINE_BYTES = 64 * 1024
#: the deepest nesting of arrays and objects in a line (a valid line has 2)
MAX_DEPTH = 16
#: the most digits of a JSON integer (a 64-bit value has 20)
MAX_DIGITS = 40
#: the most ops of one trace (about 3 GB of memory)
MAX_OPS = 10_000_000


def _depth(text: str) -> int:
    """The deepest nesting of [ and { in a JSON text, outside strings."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


class _Refused(Exception):
    """A bound of the format, found while decoding a line (its place is added above)."""


def _object(pairs: list) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for key, _value in pairs:
            if key in seen:
                raise _Refused(f"field {show_value(key)} appears twice")
            seen.add(key)
    return obj


def _integer(digits: str) -> int:
    if len(digits) > MAX_DIGITS and len(digits.lstrip("-")) > MAX_DIGITS:
        raise _Refused(f"a number of {len(digits)} digits: at most {MAX_DIGITS} (the values "
                       "fit in 64 bits)")
    return int(digits)


def _constant(name: str):
    raise _Refused(f"{name} is not a JSON number")


#: made once: a decoder per line would cost as much as the decoding
_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_int=_integer,
                            parse_constant=_constant)


def decode_line(text: str, where: str):
    """One trace line (not blank, not a comment) as JSON, with the format's bounds: no
    duplicate field, no nesting deeper than MAX_DEPTH, no integer over MAX_DIGITS digits."""
    if (text.count("[") + text.count("{") > MAX_DEPTH) and _depth(text) > MAX_DEPTH:
        raise InputError(f"{where}: nested more than {MAX_DEPTH} levels deep")
    try:
        return _DECODER.decode(text)
    except _Refused as err:
        raise InputError(f"{where}: {err}") from None
    except json.JSONDecodeError as err:
        text = (f"{err.msg} column {err.colno}" if err.msg.endswith(" starting at")
                else f"{err.msg} at column {err.colno}")
        raise InputError(f"{where}: bad JSON: {text}") from None
    except RecursionError:
        raise InputError(f"{where}: nested too deeply") from None


def _parse_lines(lines, source: str, geom: Geometry) -> list[Op]:
    """``lines``: (line number, text) pairs."""
    ops = []
    for number, raw in lines:
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{source}:{number}"
        if len(ops) == MAX_OPS:
            raise InputError(f"{where}: more than {MAX_OPS:,} ops: split the trace")
        ops.append(parse_line(decode_line(stripped, where), where, geom, number))
    return ops


def parse_trace(text: str, source: str, geom: Geometry) -> list[Op]:
    return _parse_lines(enumerate(text.splitlines(), 1), source, geom)


def _read_lines(f, source: str):
    """A binary file's lines as text, one at a time, each at most MAX_LINE_BYTES."""
    number = 0
    while True:
        raw = f.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise InputError(f"{source}:{number}: longer than {MAX_LINE_BYTES // 1024} KiB "
                             "(a trace line is under 400 bytes)")
        text = decode_utf8(raw, source, number)
        # the lines Python's splitlines() makes of it (a trace read whole splits there too)
        for part in text.splitlines() or [""]:
            yield number, part


def load_trace(path, geom: Geometry) -> list[Op]:
    """Read a trace file as a stream: a line at a time, each line and the op count
    bounded, so that an endless or binary file ends in bad input, not in memory."""
    path = Path(path)
    with open_input(path, "a trace file") as f, reading(path, "a trace file"):
        return _parse_lines(_read_lines(f, str(path)), str(path), geom)


# ---- results, expects and writing -----------------------------------------------------------

def result_to_expect(kind: str, result: dict):
    """The ``expect`` a recorded trace carries for a result (None for csrwr and ertn)."""
    if kind == "csrrd":
        return result["value"]
    if kind not in EXPECT_KEYS:
        return None
    return {k: v for k, v in result.items() if k in EXPECT_KEYS[kind]}


def _hex(value):
    return f"0x{value:x}" if isinstance(value, int) and not isinstance(value, bool) else value


def show(value) -> str:
    """A result value as reports print it: numbers in hex."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"0x{value:x}" if isinstance(value, int) else str(value)


def check_expect(op: Op, result: dict) -> str | None:
    """None when every expected key is met, else a one-line description of the first miss."""
    if op.expect is None:
        return None
    if op.kind == "csrrd":
        if result["value"] != op.expect:
            return f"value expected {show(op.expect)}, got {show(result['value'])}"
        return None
    for key, want in op.expect.items():
        got = result.get(key)
        if got != want:
            return f"{key} expected {show(want)}, got {show(got)}"
    return None


def format_op(op: Op, with_expect: bool = True) -> str:
    """One trace line for an op (numbers as hex strings)."""
    obj = {"op": op.kind}
    if op.cpu:
        obj["cpu"] = op.cpu
    for key, value in op.args.items():
        if key == "port" and value == 0:
            continue
        obj[key] = value if key in ("csr", "access") else _hex(value)
    if with_expect and op.expect is not None:
        if isinstance(op.expect, dict):
            obj["expect"] = {k: _hex(v) for k, v in op.expect.items()}
        else:
            obj["expect"] = _hex(op.expect)
    return json.dumps(obj)


def write_lines(path, lines) -> None:
    """Write a text file whole or not at all (a temporary file renamed into place)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory")
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as err:
        raise InputError(f"{path}: cannot write: {err.strerror}") from None
    try:
        with os.fdopen(fd, "w") as out:
            for line in lines:
                out.write(line + "\n")
        os.replace(tmp, path)
    except OSError as err:
        os.unlink(tmp)
        raise InputError(f"{path}: cannot write: {err.strerror}") from None
    except BaseException:
        os.unlink(tmp)
        raise
