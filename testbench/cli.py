"""The ``loongtlb`` command line (interfaces.md section 4).

Exit status: 0 success; 1 a check failed; 2 bad input, reported in one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time

from sw_model.errors import InputError
from sw_model.geometry import load_geometry

from .backends import BACKENDS, SIMULATORS, make_backend

PROG = "loongtlb"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message):
        raise InputError(message)


def _writable_target(path: str, what: str) -> str:
    """Fail early (before a long run) when an output path cannot be written."""
    import os
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        raise InputError(f"{path}: {what} path is a directory")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{path}: cannot write {what}: no such directory {parent}")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise InputError(f"{path}: cannot write {what}: permission denied")
    return path


def cmd_info(args) -> int:
    geom = load_geometry(args.config)
    print("\n".join(geom.summary()))
    return 0


def cmd_replay(args) -> int:
    from .replay import replay
    from .trace import load_trace

    geom = load_geometry(args.config)
    ops = load_trace(args.trace, geom)
    if args.vcd:
        _writable_target(args.vcd, "waveform")
    cpus = 1 + max((op.cpu for op in ops), default=0)
    backend = make_backend(geom, args.backend, cpus, sim=args.sim, vcd=args.vcd)
    start = time.perf_counter()
    try:
        result = replay(ops, backend, args.trace)
    finally:
        backend.close()
    elapsed = time.perf_counter() - start
    if not result.ok:
        print(f"FAIL {result.failure}", file=sys.stderr)
        return 1
    print(f"ok {args.trace}: {result.ops} ops on {cpus} CPU{'s' if cpus > 1 else ''}, "
          f"{result.expects} expected values met, backend {args.backend}, "
          f"{elapsed:.2f} s")
    return 0


def cmd_export(args) -> int:
    from rtl.export import convert, format_of
    from .trace import write_lines

    geom = load_geometry(args.config)
    fmt = format_of(args.output)
    _writable_target(args.output, "output")
    start = time.perf_counter()
    text = convert(geom, fmt)
    write_lines(args.output, [text.rstrip("\n")])
    print(f"wrote {args.output}: {fmt} of {geom.name}, {len(text.splitlines())} lines, "
          f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="LoongArch TLB: RTL, reference model and the "
                     "Linux lost-race fault path")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("info", help="geometry summary")
    p.add_argument("config")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("export", help="Verilog (.v) or RTLIL (.il) of the TLB unit")
    p.add_argument("config")
    p.add_argument("-o", "--output", required=True, metavar="FILE")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("replay", help="run a trace and check every expect")
    p.add_argument("config")
    p.add_argument("trace")
    p.add_argument("--backend", choices=BACKENDS, default="cosim")
    p.add_argument("--sim", choices=SIMULATORS, default="pysim")
    p.add_argument("--vcd", metavar="FILE")
    p.set_defaults(func=cmd_replay)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except InputError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
