"""Trace replay: run every op of a trace on a backend and check every expect."""

from __future__ import annotations

from dataclasses import dataclass

from .backends import Backend, Mismatch
from .trace import Op, check_expect, show


@dataclass
class ReplayResult:
    ok: bool
    ops: int
    expects: int
    #: one line describing the first failure (None when ok)
    failure: str | None = None
    cpus: int = 1
    #: clock cycles the RTL ran (:attr:`Backend.cycles`), for a trace that passed on an RTL
    #: backend; None otherwise
    cycles: int | None = None


def where(op: Op, source: str) -> str:
    """Where an op is, as failure messages name it."""
    return f"{source}:{op.line}: {op.kind}" + (f" (cpu {op.cpu})" if op.cpu else "")


def replay(ops: list[Op], backend: Backend, source: str = "trace",
           batch: int = 1024, progress=None) -> ReplayResult:
    """Run ``ops`` and check every expect, stopping at the first failure. Ops go to the
    backend in batches (one exchange each where the backend can, e.g. Verilator);
    ``progress(done, total)`` is called after each batch that passed."""
    met = 0
    cpus = 1 + max((op.cpu for op in ops), default=0)
    for start in range(0, len(ops), batch):
        chunk = ops[start:start + batch]
        try:
            results = backend.execute_batch(chunk)
        except Mismatch as err:
            done = start + next(i for i, op in enumerate(chunk) if op is err.op)
            other = err.other
            detail = getattr(err, "detail", None) or \
                f"{err.key}: model {show(err.model)}, {other} {show(err.rtl)}"
            return ReplayResult(False, done, met, f"{where(err.op, source)}: model and "
                                f"{other.upper() if other == 'rtl' else other} disagree: "
                                f"{detail}", cpus)
        for i, (op, result) in enumerate(zip(chunk, results, strict=True)):
            miss = check_expect(op, result)
            if miss is not None:
                return ReplayResult(False, start + i, met, f"{where(op, source)}: {miss}", cpus)
            if op.expect is not None:
                met += 1 if op.kind == "csrrd" else len(op.expect)
        if progress:
            progress(start + len(chunk), len(ops))
    return ReplayResult(True, len(ops), met, None, cpus, backend.cycles)
