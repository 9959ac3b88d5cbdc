"""The backends that serve the TLB port: ``model`` (the reference model), ``cosim`` (model
and RTL in lock step) and the RTL backends (:mod:`.rtl_backend`, :mod:`.verilator_backend`),
chosen by name with :func:`make_backend` (interfaces.md section 4).

A :class:`Backend` runs :class:`~.trace.Op` objects for any number of CPUs and returns each
op's result dict.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from loongtlb.sw_model.errors import InputError
from loongtlb.sw_model.geometry import Geometry
from loongtlb.sw_model.tlb import ReferenceTLB

from .trace import OUTPUT_CSRS, Op, show

__all__ = ["Backend", "ModelBackend", "CosimBackend", "Mismatch", "Observation", "make_backend",
           "translate_result", "instruction_result"]


@dataclass(frozen=True)
class Observation:
    """A request that reads a backend's state back and is not a trace op: ``snapshot`` (every
    CSR as csrrd reads it), ``valid`` (which slots hold an entry), ``probe`` (a lookup
    without side effects). Backends take it where they take an :class:`~.trace.Op`."""

    kind: str
    cpu: int
    args: dict = field(default_factory=dict)


class Mismatch(Exception):
    """The model and the RTL (``other``) disagreed on an op's result."""

    other = "rtl"

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
        """A lookup without side effects."""
        return self.execute(Observation("probe", cpu, {"va": va, "access": access, "port": 0}))

    def execute_observed(self, op: Op, csrs: bool, valid: bool):
        """What cosim checks: ``execute(op)``, then (when asked) every CSR as csrrd would
        read it and the slots holding an entry (bit i for Index i), from the internal ops
        ``snapshot`` and ``valid`` that RTL backends answer: ``(result, CSRs or None, bits
        or None)``, in one exchange where the backend can."""
        extra = ([Observation("snapshot", op.cpu)] if csrs else []) + \
            ([Observation("valid", op.cpu)] if valid else [])
        result, *rest = self.execute_batch([op, *extra])
        snapshot = rest.pop(0) if csrs else None
        bits = rest.pop(0)["bits"] if valid else None
        return result, snapshot, bits

    def reference(self, cpu: int) -> ReferenceTLB | None:
        """CPU ``cpu``'s reference TLB, where this backend runs one (model, cosim), for
        drivers that read its state (the fuzzer's coverage); None for the RTL alone."""
        return None

    def state_key(self, cpu: int):
        """CPU ``cpu``'s whole TLB state as a hashable value, from the reference model;
        None where this backend has no model (the RTL alone)."""
        reference = self.reference(cpu)
        return None if reference is None else reference.state_key()

    def close(self) -> None:
        """Finish (write a waveform, stop a simulator)."""


#: per bit b of a byte, the translation of every byte value to b"0" or b"1"
_BIT_CHARS = [bytes(48 + (v >> b & 1) for v in range(256)) for b in range(8)]


def e_bits_in_index_order(geom: Geometry, observed: int) -> int:
    """The slots' E bits in Index order (bit i for Index i) from the RTL's observation of
    them (``Geometry.e_bit_position``: the STLB's set by set, each set's word padded to whole
    bytes, then the MTLB's): one pass over the sets' bytes per way."""
    S, W = geom.stlb_sets, geom.stlb_ways
    if not W:
        return observed
    step = geom.e_bits_pitch // 8
    stlb_bits = S * geom.e_bits_pitch
    data = (observed & ((1 << stlb_bits) - 1)).to_bytes(S * step, "little")
    bits = observed >> stlb_bits << geom.stlb_entries
    for w in range(W):
        column = data[w // 8::step].translate(_BIT_CHARS[w % 8])     # set 0 first
        bits |= int(column[::-1], 2) << (w * S)
    return bits


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

    def reference(self, cpu: int) -> ReferenceTLB:
        return self.tlbs[cpu]


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

    def reference(self, cpu: int) -> ReferenceTLB:
        return self.model.reference(cpu)

    def close(self) -> None:
        self.rtl.close()


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def progress_bar(done: int, total: int) -> None:
    """A progress line on stderr, redrawn in place; only on a terminal."""
    if not sys.stderr.isatty():
        return
    width = 30
    filled = width * done // total
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} ops", end="",
          file=sys.stderr, flush=True)


BACKENDS = ("model", "rtl", "cosim")
SIMULATORS = ("pysim", "verilator")


def make_backend(geom: Geometry, name: str, cpus: int = 1, *, sim: str = "pysim",
                 vcd: str | None = None, unit_class=None) -> Backend:
    if name == "qemu":
        from .qemu import QemuBackend
        return QemuBackend(geom, cpus)
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r} (one of {', '.join(BACKENDS)})")
    if sim not in SIMULATORS:
        raise InputError(f"unknown simulator {sim!r} (one of {', '.join(SIMULATORS)})")
    if name == "model":
        if vcd:
            raise InputError("--vcd needs the rtl or cosim backend")
        return ModelBackend(geom, cpus)
    if sim == "verilator":
        if vcd:
            raise InputError("--vcd needs --sim pysim")
        if unit_class is not None:
            raise InputError("another unit class needs --sim pysim")
        from .verilator_backend import VerilatorBackend
        rtl = VerilatorBackend(geom, cpus, progress=say)
    else:
        from .rtl_backend import RTLBackend  # Amaranth only when the RTL is wanted
        rtl = (RTLBackend(geom, cpus, vcd=vcd) if unit_class is None else
               RTLBackend(geom, cpus, vcd=vcd, unit_class=unit_class))
    if name == "rtl":
        return rtl
    return CosimBackend(ModelBackend(geom, cpus), rtl)
