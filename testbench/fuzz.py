"""Constrained-random differential regression: random TLB operations, model and RTL in lock
step, functional coverage, reproduction and shrinking of failures.

Coverage is read off the reference model (the oracle), before and after each op, so the
same bins are filled whichever backend runs the RTL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from loongtlb.sw_model.geometry import Geometry
from loongtlb.sw_model.tlb import ReferenceTLB

from .backends import make_backend
from .backends import Backend, Mismatch
from .randomops import RandomOps
from .trace import Op, format_op

EXCEPTION_PAIRS = {"load": ("TLBR", "PIL", "PPI", "PNR"), "store": ("TLBR", "PIS", "PPI", "PME"),
                   "fetch": ("TLBR", "PIF", "PNX", "PPI")}


def coverage_bins(geom: Geometry) -> list[str]:
    """Every bin a run on ``geom`` should fill."""
    banks = (["stlb"] if geom.has_stlb else []) + ["mtlb"]
    bins = []
    for bank in banks:
        bins += [f"tlbsrch hit {bank}", f"tlbrd valid {bank}", f"tlbwr {bank}",
                 f"tlbfill {bank}", f"tlbclr {bank}", f"tlbflush {bank}",
                 f"translate hit {bank}", f"tlbfill {bank} full ({geom.policy})"]
    bins += ["tlbsrch miss", "tlbrd empty", "tlbwr illegal", "tlbfill illegal",
             "translate miss", "invtlb illegal",
             "tlbfill in refill context", "tlbwr in refill context", "multi-hit raised"]
    if geom.total_entries < 1 << geom.index_bits:
        bins.append("tlbwr out of range")     # only when some Index values name no slot
    for op in range(7):
        bins += [f"invtlb {op} invalidated", f"invtlb {op} nothing"]
    for access, excs in EXCEPTION_PAIRS.items():
        for exc in excs:
            if geom.is_la32 and exc in ("PNR", "PNX"):
                continue                      # LA32 has no NR / NX
            bins.append(f"{access} {exc}")
    return bins


@dataclass
class Coverage:
    geom: Geometry
    hits: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        self.hits = {name: 0 for name in coverage_bins(self.geom)}

    def _hit(self, name: str) -> None:
        if name in self.hits:
            self.hits[name] += 1

    def _bank(self, index: int) -> str:
        return "stlb" if index < self.geom.stlb_entries else "mtlb"

    @staticmethod
    def _valid(tlb: ReferenceTLB) -> int:
        return tlb.valid_bits().bit_count()

    def before(self, tlb: ReferenceTLB, op: Op) -> tuple:
        return (tlb.in_refill, self._valid(tlb) if op.kind == "invtlb" else 0, tlb.lfsr,
                dict(tlb.rr), tlb.multi_hit,
                tlb.csr["TLBIDX"] & ((1 << self.geom.index_bits) - 1))

    def after(self, tlb: ReferenceTLB, op: Op, result: dict, before: tuple) -> None:
        in_refill, valid_before, lfsr, rr, multi, index = before
        kind = op.kind
        if result.get("multi_hit") and not multi:
            self._hit("multi-hit raised")
        if kind == "translate":
            exc = result["exc"]
            self._hit(f"{op.args['access']} {exc}")
            hits = tlb.matches(op.args["va"], tlb.asid)
            self._hit(f"translate hit {self._bank(hits[0][0])}" if hits else "translate miss")
        elif kind == "tlbsrch":
            found = not result["TLBIDX"] >> 31
            self._hit(f"tlbsrch hit {self._bank(result['TLBIDX'] & 0xFFFF)}" if found
                      else "tlbsrch miss")
        elif kind == "tlbrd":
            empty = result["TLBIDX"] >> 31
            self._hit("tlbrd empty" if empty else f"tlbrd valid {self._bank(index)}")
        elif kind in ("tlbwr", "tlbfill"):
            if result["illegal"]:
                self._hit(f"{kind} illegal")
            elif kind == "tlbwr" and index >= self.geom.total_entries:
                self._hit("tlbwr out of range")
            else:
                bank = self._bank(result["slot"] if kind == "tlbfill" else index)
                self._hit(f"{kind} {bank}")
                if in_refill:
                    self._hit(f"{kind} in refill context")
                if kind == "tlbfill" and (tlb.lfsr != lfsr or tlb.rr != rr):
                    self._hit(f"tlbfill {bank} full ({self.geom.policy})")
        elif kind in ("tlbclr", "tlbflush"):
            if index < self.geom.total_entries:
                self._hit(f"{kind} {self._bank(index)}")
        elif kind == "invtlb":
            op_ = op.args["inv_op"]
            if result["illegal"]:
                self._hit("invtlb illegal")
            else:
                changed = self._valid(tlb) < valid_before
                self._hit(f"invtlb {op_} {'invalidated' if changed else 'nothing'}")

    @property
    def missed(self) -> list[str]:
        return [name for name, count in self.hits.items() if not count]

    def table(self) -> str:
        width = max(len(n) for n in self.hits) + 2
        lines = [f"coverage: {len(self.hits) - len(self.missed)} of {len(self.hits)} bins"]
        names = list(self.hits)
        half = (len(names) + 1) // 2
        right_column = names[half:] + [""] * (2 * half - len(names))

        def cell(name):
            return f"{name:<{width}}{self.hits[name]:>7}" if name else ""

        for left, right in zip(names[:half], right_column, strict=True):
            lines.append(f"  {cell(left)}    {cell(right)}")
        if self.missed:
            lines.append("never hit: " + ", ".join(self.missed))
        return "\n".join(lines)


@dataclass
class FuzzResult:
    ops: list[Op]
    done: int
    coverage: Coverage
    failure: str | None = None
    failed_at: int | None = None


def _shadow(backend: Backend, geom: Geometry, cpus: int):
    """The reference TLBs coverage reads: the backend's own (cosim's checker), else those of
    a model run beside it."""
    tlbs = [backend.reference(cpu) for cpu in range(cpus)]
    if None not in tlbs:
        return tlbs, None
    from .backends import ModelBackend
    shadow = ModelBackend(geom, cpus)
    return shadow.tlbs, shadow


def fuzz(geom: Geometry, ops: int, seed: int, cpus: int = 1, backend: str = "cosim",
         progress=None, backend_factory=None, sim: str = "pysim") -> FuzzResult:
    """Run ``ops`` random operations; stop at the first disagreement."""
    gen = RandomOps(geom, seed, cpus)
    work = gen.take(ops)
    if backend_factory is None:
        be = make_backend(geom, backend, cpus, sim=sim)
    else:
        be = backend_factory(geom, backend, cpus)
    tlbs, shadow = _shadow(be, geom, cpus)
    cov = Coverage(geom)
    try:
        for i, op in enumerate(work):
            tlb = tlbs[op.cpu]
            before = cov.before(tlb, op)
            try:
                result = be.execute(op)
            except Mismatch as err:
                return FuzzResult(work[:i + 1], i, cov, str(err), i)
            if shadow is not None:
                result = shadow.execute(op)
            cov.after(tlb, op, result, before)
            if progress and (i + 1) % 500 == 0:
                progress(i + 1, ops)
    finally:
        be.close()
    return FuzzResult(work, ops, cov)


def still_fails(geom: Geometry, ops: list[Op], cpus: int, backend_factory=None,
                vcd: str | None = None) -> bool:
    """Whether ``ops`` still make the model and the RTL disagree; with ``vcd``, the run's
    waveform is written there."""
    extra = {"vcd": vcd} if vcd else {}
    be = (backend_factory or make_backend)(geom, "cosim", cpus, **extra)
    try:
        for op in ops:
            be.execute(op)
    except Mismatch:
        return True
    finally:
        be.close()
    return False


def shrink(geom: Geometry, ops: list[Op], cpus: int, budget_s: float = 120.0,
           backend_factory=None) -> list[Op]:
    """Drop operations while the model and the RTL still disagree (chunks, then single ops),
    within a time budget; the result still fails."""
    start = time.monotonic()
    current = list(ops)
    chunk = max(1, len(current) // 2)
    while chunk >= 1 and time.monotonic() - start < budget_s:
        i = 0
        removed = False
        while i < len(current) and time.monotonic() - start < budget_s:
            trial = current[:i] + current[i + chunk:]
            if trial and still_fails(geom, trial, cpus, backend_factory):
                current = trial
                removed = True
            else:
                i += chunk
        if not removed:
            chunk //= 2
    return current


def trace_lines(ops: list[Op], header: str) -> list[str]:
    return [f"# {header}"] + [format_op(op, with_expect=False) for op in ops]
