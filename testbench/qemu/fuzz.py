"""fuzz --oracle qemu: random operations QEMU can run, on QEMU and the model, and the
shrinking of a difference."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from loongtlb.sw_model.errors import InputError
from loongtlb.sw_model.geometry import Geometry
from loongtlb.sw_model.tlb import Entry, ReferenceTLB

from ..backends import run_on_model
from ..randomops import RandomOps
from ..trace import Op
from .program import NOTHING, WINDOW, WINDOW_END, State
from .rules import Divergence, check_geometry
from .run import run_ops


def overlaps(model: ReferenceTLB, vppn: int, ps: int, asid: int, g: bool,
              replaced: int | None = None) -> bool:
    """Whether a new entry would match some VA that a valid entry (other than slot
    ``replaced``) matches under some ASID: two matching entries, which the architecture
    leaves undefined and TLBFILL's read-back cannot tell apart."""
    geom = model.geom
    stlbps = model.stlbps

    def clash(index: int, entry: Entry, eps: int) -> bool:
        if not entry.e or index == replaced or not (g or entry.g or entry.asid == asid):
            return False
        shift = max(ps, eps) + 1 - 13
        return vppn >> shift == entry.vppn >> shift

    if ps <= stlbps:
        sets = [geom.stlb_set_of(vppn << 13, stlbps)]
    else:
        sets = range(geom.stlb_sets)
    for set_ in sets:
        for way in range(geom.stlb_ways):
            if clash(geom.index_of_stlb(way, set_), model.stlb[way][set_], stlbps):
                return True
    return any(clash(geom.index_of_mtlb(i), e, e.ps) for i, e in enumerate(model.mtlb))


class QemuOps(RandomOps):
    """:class:`RandomOps` kept inside what the architecture defines and QEMU 7.2 can run
    (docs/spec/qemu.md): no two matching entries (``model``, kept in step with the ops
    taken, says which exist), listed page sizes, Index in range, G equal in both halves,
    PPNs aligned to their page, in the window the program observes or where nothing is
    mapped, CRMD.PLV 0 or 3, addresses aligned to what they access."""

    def __init__(self, geom: Geometry, seed: int):
        super().__init__(geom, seed)
        self.model = ReferenceTLB(geom)

    def next(self) -> Op:
        op = super().next()
        run_on_model(self.model, op)
        return op

    # ---- values ---------------------------------------------------------------------------
    def _ppn(self, ps: int) -> int:
        rng = self.rng
        size = 1 << ps
        roll = rng.random()
        if roll < 0.8 and size <= WINDOW_END - WINDOW:
            base = WINDOW + rng.randrange((WINDOW_END - WINDOW) // size) * size
        else:                          # where nothing is mapped: a bus error (Q14)
            base = NOTHING + rng.randrange(((1 << self.geom.palen) - NOTHING) // size) * size
        return base >> 12

    def _elo_ps(self, ps: int, g: bool) -> int:
        rng = self.rng
        value = (rng.random() < 0.85) | (rng.random() < 0.6) << 1
        value |= rng.choice((0, 3, 3)) << 2 | rng.randrange(3) << 4 | g << 6
        value |= self._ppn(ps) << 12
        value |= (rng.random() < 0.2) << 61 | (rng.random() < 0.2) << 62
        value |= (rng.random() < 0.1) << 63
        return value

    def _pair(self, ps: int) -> tuple[int, int]:
        g = self.rng.random() < 0.2
        return self._elo_ps(ps, g), self._elo_ps(ps, g)

    def _ps(self) -> int:
        if self.rng.random() < 0.6:
            return self.model.stlbps
        return self.rng.choice(self.geom.page_shifts)

    def _index(self) -> int:
        """Half the time a slot that holds an entry, so that TLBRD, TLBCLR and TLBFLUSH
        meet entries as often as empty slots."""
        g = self.geom
        if self.rng.random() < 0.5:
            valid = [g.index_of_stlb(w, s) for w, row in enumerate(self.model.stlb)
                     for s, e in enumerate(row) if e.e]
            valid += [g.index_of_mtlb(i) for i, e in enumerate(self.model.mtlb) if e.e]
            if valid:
                return self.rng.choice(valid)
        return self.rng.randrange(g.total_entries)

    # ---- op makers ------------------------------------------------------------------------
    def _translate(self):
        rng = self.rng
        access = rng.choice(("load", "store", "fetch"))
        va = self._va(mapped=0.8)
        va &= ~15 if access == "fetch" and rng.random() < 0.7 else \
            ~3 if access == "fetch" else ~7 if rng.random() < 0.9 else ~0
        if rng.random() < 0.03:
            va |= ((1 << 64) - 1) & ~self.va_mask        # sign bits: ignored (D14)
        ops = [self._op("translate", va=va, access=access)]
        if rng.random() < 0.6:
            ops.append(self._op("ertn"))
        return ops

    def _write_group(self, ehi: str, va: int, ps: int, insn: str, index: int | None):
        """CSR writes for an entry at ``va`` with page size ``ps``, then ``insn``; the
        instruction is left out when its entry would match the same VA as another."""
        rng, model = self.rng, self.model
        lo0, lo1 = self._pair(ps)
        asid = rng.choice(self.asids) if rng.random() < 0.3 else None
        ops = [] if asid is None else [self._op("csrwr", csr="ASID", value=asid)]
        if ehi == "TLBEHI" and model.in_refill:
            ops.insert(0, self._op("ertn"))       # the group writes the normal CSRs
        va &= ~0x1FFF
        ops.append(self._op("csrwr", csr=ehi, value=self._remember(va) |
                            (ps if ehi == "TLBREHI" else 0)))
        prefix = "TLBRELO" if ehi == "TLBREHI" else "TLBELO"
        ops += [self._op("csrwr", csr=f"{prefix}0", value=lo0),
                self._op("csrwr", csr=f"{prefix}1", value=lo1)]
        if index is not None:
            ops.append(self._op("csrwr", csr="TLBIDX", value=index | ps << 24
                                | (rng.random() < 0.05) << 31))
        g = bool(lo0 >> 6 & 1)
        use_asid = (model.asid if asid is None else asid) & ((1 << self.geom.asid_bits) - 1)
        replaced = index if insn == "tlbwr" else None
        if insn == "tlbwr" and ehi == "TLBEHI" and index is None:
            replaced = model.csr["TLBIDX"] & 0xFFF
        vppn = (va >> 13) & ((1 << self.geom.vppn_bits) - 1)
        if not overlaps(model, vppn, ps, use_asid, g, replaced):
            ops.append(self._op(insn))
        return ops

    def _fill_sequence(self):
        va, ps = self.rng.choice(self.pairs)
        if self.rng.random() < 0.3:
            ps = self._ps()
        va += self.rng.randrange(1 << (ps + 1))
        ops = self._write_group("TLBEHI", va, ps, "tlbfill", self._index())
        if self.rng.random() < 0.3 and ops[-1].kind == "tlbfill":
            ops.append(self._op("translate", va=va & ~7, access=self.rng.choice(
                ("load", "store"))))
        return ops

    def _tlbwr(self):
        return self._write_group("TLBEHI", self._va(), self._ps(), "tlbwr", self._index())

    def _refill_context(self):
        rng = self.rng
        ops = [self._op("csrwr", csr="TLBRERA", value=1)] if rng.random() < 0.5 else []
        insn = rng.choice(("tlbfill", "tlbfill", "tlbwr", "tlbsrch"))
        if insn == "tlbsrch":
            ops += [self._op("csrwr", csr="TLBREHI", value=(self._va() & ~0x1FFF) |
                             self._ps()), self._op("tlbsrch")]
        elif self.model.in_refill or ops:
            ops += self._write_group("TLBREHI", self._va(), self._ps(), insn, None)
        if rng.random() < 0.7:
            ops.append(self._op("ertn"))
        return ops

    def _csr_setting(self):
        rng = self.rng
        name = rng.choice(("ASID", "ASID", "CRMD", "CRMD", "MISC"))
        value = {"ASID": lambda: rng.choice(self.asids), "CRMD": lambda: rng.choice((0, 3)),
                 "MISC": lambda: rng.randrange(8) << 16}[name]()
        return [self._op("csrwr", csr=name, value=value)]

    def _invtlb(self):
        rng = self.rng
        op = rng.choice((0, 1, 2, 3, 4, 4, 5, 5, 5, 6, 6, 6, 7, rng.randrange(32)))
        return [self._op("invtlb", inv_op=op, asid=rng.choice(self.asids), va=self._va())]


@dataclass
class FuzzOutcome:
    ops: list[Op]
    done: int
    rules: Counter
    unobserved: Counter
    runs: int
    failure: str | None = None
    #: what differed (Divergence.key), which shrinking keeps
    key: str | None = None


def fuzz(geom: Geometry, ops: int, seed: int, batch: int = 2000,
         progress=None) -> FuzzOutcome:
    """``ops`` operations of :class:`QemuOps` on QEMU and the model, a batch per QEMU run,
    each run starting where the last left off; stops at the first unexplained difference
    (``ops`` then holds every op up to it, from the reset state)."""
    check_geometry(geom)
    gen = QemuOps(geom, seed)
    state = State.reset(geom)
    taken: list[Op] = []
    rules, unobserved, runs = Counter(), Counter(), 0
    while len(taken) < ops:
        chunk = [gen.next() for _ in range(min(batch, ops - len(taken)))]
        try:
            outcome, state = run_ops(geom, chunk, state)
        except Divergence as err:
            upto = next(i for i, op in enumerate(chunk) if op is err.op) + 1
            return FuzzOutcome(taken + chunk[:upto], len(taken) + upto - 1, rules,
                               unobserved, runs + 1, str(err), err.key)
        taken += chunk
        runs += 1
        rules += outcome.rules
        unobserved += outcome.unobserved
        if progress:
            progress(len(taken), ops)
    return FuzzOutcome(taken, len(taken), rules, unobserved, runs)


def still_diverges(geom: Geometry, ops: list[Op], key: str | None = None) -> bool:
    """Whether ``ops`` (from the reset state) still end in an unexplained difference (in
    ``key``, if given)."""
    try:
        run_ops(geom, ops)
    except Divergence as err:
        return key is None or err.key == key
    except InputError:
        return False
    return False


def shrink(geom: Geometry, ops: list[Op], budget_s: float = 120.0,
           key: str | None = None) -> list[Op]:
    """Drop ops while QEMU and the model still differ unexplained, in ``key`` if given
    (chunks, then single ops), within a time budget."""
    start = time.monotonic()
    current, chunk = list(ops), max(1, len(ops) // 2)
    while chunk >= 1 and time.monotonic() - start < budget_s:
        i, removed = 0, False
        while i < len(current) and time.monotonic() - start < budget_s:
            trial = current[:i] + current[i + chunk:]
            if trial and still_diverges(geom, trial, key):
                current, removed = trial, True
            else:
                i += chunk
        if not removed:
            chunk //= 2
    return current
