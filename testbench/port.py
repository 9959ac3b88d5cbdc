"""The TLB port: the one protocol every driver speaks and every backend serves
(docs/architecture.md). A :class:`TLBPort` is one CPU's view of a backend
(:mod:`.backends`) with a method per op; it can record what passes through it as a trace
with full expects, and tell an observer about every op.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .trace import Op, format_op, result_to_expect

if TYPE_CHECKING:
    from .backends import Backend

__all__ = ["TLBPort", "Recorder", "PortObserver"]


class Recorder:
    """Collects the ops that pass through ports as trace lines with full expects."""

    def __init__(self):
        self.lines: list[str] = []

    def record(self, op: Op, result: dict) -> None:
        expect = result_to_expect(op.kind, result)
        self.lines.append(format_op(Op(op.kind, op.args, op.cpu, expect)))


class PortObserver(Protocol):
    """Told about every op that passes through a port (the kernel model counts its TLB
    instructions and checks for multi-hits so)."""

    def op_done(self, op: Op, result: dict) -> None: ...


class TLBPort:
    """One CPU's TLB port: a method per trace op, each returning the op's result dict."""

    def __init__(self, backend: Backend, cpu: int = 0, recorder: Recorder | None = None,
                 observer: PortObserver | None = None):
        self.backend, self.cpu, self.recorder = backend, cpu, recorder
        self.observer = observer

    def run(self, op: Op) -> dict:
        result = self.backend.execute(op)
        if self.recorder is not None:
            self.recorder.record(op, result)
        if self.observer is not None:
            self.observer.op_done(op, result)
        return result

    def _op(self, kind: str, **args) -> dict:
        return self.run(Op(kind, args, self.cpu))

    def csrrd(self, csr: str) -> int:
        return self._op("csrrd", csr=csr)["value"]

    def csrwr(self, csr: str, value: int) -> None:
        self._op("csrwr", csr=csr, value=value)

    def tlbsrch(self) -> dict:
        return self._op("tlbsrch")

    def tlbrd(self) -> dict:
        return self._op("tlbrd")

    def tlbwr(self) -> dict:
        return self._op("tlbwr")

    def tlbfill(self) -> dict:
        return self._op("tlbfill")

    def tlbclr(self) -> dict:
        return self._op("tlbclr")

    def tlbflush(self) -> dict:
        return self._op("tlbflush")

    def invtlb(self, op: int, asid: int = 0, va: int = 0) -> dict:
        return self._op("invtlb", inv_op=op, asid=asid, va=va)

    def translate(self, va: int, access: str, port: int = 0) -> dict:
        return self._op("translate", va=va, access=access, port=port)

    def ertn(self) -> None:
        self._op("ertn")

    def probe(self, va: int, access: str) -> dict:
        """A side-effect-free lookup; not recorded (it is not a trace op)."""
        return self.backend.probe(self.cpu, va, access)
