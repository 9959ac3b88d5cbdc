"""The TLB port: the one protocol every driver speaks and every backend serves (design.md).

A :class:`Backend` runs :class:`~testbench.trace.Op` objects for any number of CPUs and
returns each op's result dict. A :class:`TLBPort` is one CPU's view of a backend with a method
per op; it can record what passes through it as a trace with full expects.
"""

from __future__ import annotations

from loongtlb.sw_model.geometry import Geometry
from loongtlb.sw_model.tlb import ReferenceTLB

from .trace import OUTPUT_CSRS, Op, format_op, result_to_expect, show

__all__ = ["Backend", "ModelBackend", "CosimBackend", "Mismatch", "TLBPort", "Recorder",
           "translate_result", "instruction_result"]


class Mismatch(Exception):
    """The model and the RTL disagreed on an op's result."""

    def __init__(self, op: Op, key: str, model, rtl):
        self.op, self.key, self.model, self.rtl = op, key, model, rtl
        super().__init__(f"{op.kind} on cpu {op.cpu}: {key}: model {show(model)}, "
                         f"rtl {show(rtl)}")


class Backend:
    """Runs ops on one TLB per CPU. Subclasses implement :meth:`execute`."""

    name = "?"

    def __init__(self, geom: Geometry, cpus: int = 1):
        self.geom = geom
        self.cpus = cpus

    @property
    def cycles(self) -> int | None:
        """Clock cycles the RTL has run for the ops so far (each op from its first input to
        the edge that completes it; CPUs take turns); None where no RTL runs."""
        return None

    def execute(self, op: Op) -> dict:
        raise NotImplementedError

    def execute_batch(self, ops: list[Op]) -> list[dict]:
        """Run ops in order; backends that can run a batch in one exchange override this."""
        return [self.execute(op) for op in ops]

    def probe(self, cpu: int, va: int, access: str) -> dict:
        """A lookup without side effects (not a trace op)."""
        return self.execute(Op("probe", {"va": va, "access": access, "port": 0}, cpu))

    def execute_observed(self, op: Op, csrs: bool, valid: bool):
        """What cosim checks: ``execute(op)``, then (when asked) every CSR as csrrd would
        read it and the slots holding an entry (bit i for Index i), from the internal ops
        ``snapshot`` and ``valid`` that RTL backends answer: ``(result, CSRs or None, bits
        or None)``, in one exchange where the backend can."""
        extra = ([Op("snapshot", {}, op.cpu)] if csrs else []) + \
            ([Op("valid", {}, op.cpu)] if valid else [])
        result, *rest = self.execute_batch([op, *extra])
        snapshot = rest.pop(0) if csrs else None
        bits = rest.pop(0)["bits"] if valid else None
        return result, snapshot, bits

    def state_key(self, cpu: int):
        """CPU ``cpu``'s whole TLB state as a hashable value, from the reference model;
        None where this backend has no model (the RTL alone)."""
        return None

    def close(self) -> None:
        """Finish (write a waveform, stop a simulator)."""


def translate_result(exc: str, pa: int, mat: int, multi_hit) -> dict:
    """A translation's result dict from what an RTL backend read off its ports."""
    result = {"exc": exc}
    if exc == "NONE":
        result.update(pa=pa, mat=mat)
    result["multi_hit"] = bool(multi_hit)
    return result


def instruction_result(kind: str, illegal, slot: int, multi_hit, read_csr) -> dict:
    """An instruction's result dict from what an RTL backend read off its ports;
    ``read_csr(name)`` reads the CSRs the instruction writes (OUTPUT_CSRS)."""
    if kind == "ertn":
        return {}
    result = {"illegal": bool(illegal), "multi_hit": bool(multi_hit)}
    if kind == "tlbfill" and not illegal:
        result["slot"] = slot
    for name in OUTPUT_CSRS.get(kind, ()):
        result[name] = read_csr(name)
    return result


def run_on_model(tlb: ReferenceTLB, op: Op) -> dict:
    """Apply one op to a reference TLB."""
    a = op.args
    kind = op.kind
    if kind == "csrrd":
        return tlb.csrrd(a["csr"])
    if kind == "csrwr":
        return tlb.csrwr(a["csr"], a["value"])
    if kind == "translate":
        return tlb.translate(a["va"], a["access"])
    if kind == "probe":
        return tlb.probe(a["va"], a["access"])
    if kind == "invtlb":
        return tlb.invtlb(a["inv_op"], a["asid"], a["va"])
    return getattr(tlb, kind)()


class ModelBackend(Backend):
    """The reference model alone."""

    name = "model"

    def __init__(self, geom: Geometry, cpus: int = 1):
        super().__init__(geom, cpus)
        self.tlbs = [ReferenceTLB(geom) for _ in range(cpus)]

    def execute(self, op: Op) -> dict:
        return run_on_model(self.tlbs[op.cpu], op)

    def state_key(self, cpu: int):
        return self.tlbs[cpu].state_key()


class CosimBackend(Backend):
    """Model and RTL in lock step. Every result is compared; after every op that can change
    a CSR, the whole CSR file; after every op that can change the TLB, which slots hold an
    entry. The RTL's results are the ones returned."""

    name = "cosim"
    _CSR_WRITERS = {"csrwr", "tlbsrch", "tlbrd", "translate", "ertn"}
    _TLB_WRITERS = {"tlbwr", "tlbfill", "tlbclr", "tlbflush", "invtlb"}

    def __init__(self, model: ModelBackend, rtl: Backend):
        super().__init__(model.geom, model.cpus)
        self.model, self.rtl = model, rtl
        self.compared = 0

    def execute(self, op: Op) -> dict:
        want = self.model.execute(op)
        got, rtl_csrs, got_bits = self.rtl.execute_observed(
            op, op.kind in self._CSR_WRITERS, op.kind in self._TLB_WRITERS)
        for key in sorted(set(want) | set(got)):
            if want.get(key) != got.get(key):
                raise Mismatch(op, key, want.get(key), got.get(key))
        if rtl_csrs is not None:
            model_csrs = self.model.tlbs[op.cpu].csr_snapshot()
            for name, value in model_csrs.items():
                if rtl_csrs[name] != value:
                    raise Mismatch(op, f"CSR {name} after the op", value, rtl_csrs[name])
        if got_bits is not None:
            want_bits = self.model.tlbs[op.cpu].valid_bits()
            if want_bits != got_bits:
                raise Mismatch(op, "slots holding an entry (bit per Index) after the op",
                               want_bits, got_bits)
        self.compared += 1
        return got

    @property
    def cycles(self) -> int | None:
        return self.rtl.cycles

    def state_key(self, cpu: int):
        return self.model.state_key(cpu)

    def close(self) -> None:
        self.rtl.close()


class Recorder:
    """Collects the ops that pass through ports as trace lines with full expects."""

    def __init__(self):
        self.lines: list[str] = []

    def record(self, op: Op, result: dict) -> None:
        expect = result_to_expect(op.kind, result)
        self.lines.append(format_op(Op(op.kind, op.args, op.cpu, expect)))


class TLBPort:
    """One CPU's TLB port: a method per trace op, each returning the op's result dict."""

    def __init__(self, backend: Backend, cpu: int = 0, recorder: Recorder | None = None,
                 on_op=None):
        self.backend, self.cpu, self.recorder = backend, cpu, recorder
        #: called with (op, result) after every op, e.g. to count TLB instructions
        self.on_op = on_op

    def run(self, op: Op) -> dict:
        result = self.backend.execute(op)
        if self.recorder is not None:
            self.recorder.record(op, result)
        if self.on_op is not None:
            self.on_op(op, result)
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
