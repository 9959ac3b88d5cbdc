"""Trace replay: run every op of a trace on a backend and check every expect."""

from __future__ import annotations

from dataclasses import dataclass

from .port import Backend, Mismatch, TLBPort
from .trace import Op, check_expect, show


@dataclass
class ReplayResult:
    ok: bool
    ops: int
    expects: int
    #: one line describing the first failure (None when ok)
    failure: str | None = None


def replay(ops: list[Op], backend: Backend, source: str = "trace") -> ReplayResult:
    ports = {}
    met = 0
    for done, op in enumerate(ops):
        port = ports.setdefault(op.cpu, TLBPort(backend, op.cpu))
        where = f"{source}:{op.line}: {op.kind}" + (f" (cpu {op.cpu})" if op.cpu else "")
        try:
            result = port.run(op)
        except Mismatch as err:
            return ReplayResult(False, done, met, f"{where}: model and RTL disagree: "
                                f"{err.key}: model {show(err.model)}, rtl {show(err.rtl)}")
        miss = check_expect(op, result)
        if miss is not None:
            return ReplayResult(False, done, met, f"{where}: {miss}")
        if op.expect is not None:
            met += 1 if op.kind == "csrrd" else len(op.expect)
    return ReplayResult(True, len(ops), met)

