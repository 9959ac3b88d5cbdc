"""Constrained-random TLB operations, seeded, for any geometry.

The generator keeps its addresses in a small pool concentrated on a few STLB sets and MTLB
regions, so that fills overflow sets (the replacement policy acts), searches and
translations hit as often as they miss, and every exception kind comes up. It only writes
CSR values a driver could write; the results are whatever the TLB does.
"""

from __future__ import annotations

import random

from loongtlb.sw_model.csr import CSR_NAMES
from loongtlb.sw_model.geometry import Geometry

from .trace import Op

__all__ = ["RandomOps"]


class RandomOps:
    """``next()`` returns the next :class:`Op` for CPU ``cpu`` (0 unless given)."""

    def __init__(self, geom: Geometry, seed: int, cpus: int = 1):
        self.geom = geom
        self.rng = random.Random(seed)
        self.cpus = cpus
        g, rng = geom, self.rng
        self.va_mask = (1 << g.valen) - 1
        self.grlen_mask = (1 << g.grlen) - 1
        stlbps = g.stlb_page_shift
        # page pairs: a few STLB sets (more pairs than ways), and big MTLB-sized regions
        self.pairs = []
        for _ in range(2 + 2 * max(1, g.stlb_ways)):
            set_ = rng.choice((0, 1)) if g.stlb_sets > 1 else 0
            high = rng.randrange(1 << max(1, g.valen - stlbps - 2 - g.set_bits))
            va = ((high << g.set_bits | set_) << (stlbps + 1)) & self.va_mask
            self.pairs.append((va, stlbps))
        for _ in range(4):
            ps = rng.choice(g.page_shifts)
            va = (rng.randrange(1 << max(1, g.valen - ps - 1)) << (ps + 1)) & self.va_mask
            self.pairs.append((va, ps))
        self.asids = [0, 1, 2, (1 << g.asid_bits) - 1]
        self._ops = [
            (14, self._translate), (9, self._fill_sequence), (2, self._tlbwr), (4, self._tlbsrch),
            (3, self._tlbrd), (3, self._invtlb), (1, self._tlbclr), (1, self._tlbflush),
            (3, self._csr_setting), (1, self._csrrd), (1, self._refill_context),
            (1, self._ertn),
        ]
        self._weights = [w for w, _ in self._ops]
        if not g.has_stlb:
            # without an STLB every TLBCLR/TLBFLUSH empties the whole MTLB: make them rarer
            self._weights[6] = self._weights[7] = 0.2
        self._pending: list[Op] = []
        #: VAs recently written into the TLB: translations and searches favour them
        self.recent: list[int] = []

    # ---- values ----------------------------------------------------------------------------
    def _va(self, mapped: float = 0.0) -> int:
        """A pool address; with probability ``mapped`` one recently written to the TLB."""
        if self.recent and self.rng.random() < mapped:
            return self.rng.choice(self.recent) + self.rng.randrange(1 << 13)
        va, ps = self.rng.choice(self.pairs)
        return va + self.rng.randrange(1 << (ps + 1))

    def _remember(self, va: int) -> int:
        self.recent = (self.recent + [va & ~0x1FFF])[-8:]
        return va

    def _elo(self) -> int:
        g, rng = self.geom, self.rng
        v = rng.random() < 0.8
        d = rng.random() < 0.5
        plv = rng.choice((0, 3, 3, rng.randrange(4)))
        value = v | d << 1 | plv << 2 | rng.randrange(4) << 4 | (rng.random() < 0.2) << 6
        ppn = rng.randrange(1 << g.ppn_bits)
        value |= ppn << (8 if g.is_la32 else 12)
        if not g.is_la32:
            value |= (rng.random() < 0.25) << 61 | (rng.random() < 0.25) << 62
            value |= (rng.random() < 0.15) << 63
        if rng.random() < 0.1:
            value |= rng.randrange(1 << g.grlen)       # reserved bits: the mask must drop them
        return value & self.grlen_mask

    def _ps(self) -> int:
        if self.rng.random() < 0.08:
            return self.rng.randrange(64)              # unlisted: illegal (D19)
        if self.rng.random() < 0.6:
            return self.geom.stlb_page_shift
        return self.rng.choice(self.geom.page_shifts)

    def _index(self) -> int:
        g = self.geom
        if self.rng.random() < 0.15:
            return self.rng.randrange(1 << g.index_bits)      # maybe out of range (D18)
        return self.rng.randrange(g.total_entries)

    def _tlbidx(self, ne=None) -> int:
        if ne is None:
            ne = self.rng.random() < 0.1
        return self._index() | self._ps() << 24 | ne << 31

    # ---- op makers -------------------------------------------------------------------------
    def _op(self, kind, **args) -> Op:
        return Op(kind, args, self.cpu)

    def _translate(self):
        access = self.rng.choice(("load", "store", "fetch"))
        port = self.rng.randrange(self.geom.lookup_ports)
        va = self._va(mapped=0.8)
        if self.rng.random() < 0.05:
            va |= self.rng.randrange(1 << self.geom.grlen) & ~self.va_mask   # ignored (D14)
        ops = [self._op("translate", va=va, access=access, port=port)]
        if self.rng.random() < 0.6:
            ops.append(self._op("ertn"))      # as a refill handler would, after a TLBR
        return ops

    def _fill_sequence(self):
        va, ps = self.rng.choice(self.pairs)
        if self.rng.random() < 0.8:
            ps = self._ps() if self.rng.random() < 0.3 else ps
        va += self.rng.randrange(1 << (ps + 1)) & ~0x1FFF if ps < 64 else 0
        lo0, lo1 = self._elo(), self._elo()
        if self.rng.random() < 0.25:          # a global pair: G set in both halves (D3)
            lo0, lo1 = lo0 | 1 << 6, lo1 | 1 << 6
        ops = [self._op("csrwr", csr="TLBEHI", value=self._remember(va)),
               self._op("csrwr", csr="TLBELO0", value=lo0),
               self._op("csrwr", csr="TLBELO1", value=lo1),
               self._op("csrwr", csr="TLBIDX", value=self._index() | ps << 24
                        | (self.rng.random() < 0.05) << 31)]
        if self.rng.random() < 0.3:
            ops.insert(0, self._op("csrwr", csr="ASID", value=self.rng.choice(self.asids)))
        ops.append(self._op("tlbfill"))
        if self.rng.random() < 0.3:           # the access retried after its refill
            ops.append(self._op("translate", va=va, access=self.rng.choice(
                ("load", "store", "fetch")), port=self.rng.randrange(self.geom.lookup_ports)))
        return ops

    def _tlbwr(self):
        return [self._op("csrwr", csr="TLBEHI", value=self._remember(self._va())),
                self._op("csrwr", csr="TLBELO0", value=self._elo()),
                self._op("csrwr", csr="TLBELO1", value=self._elo()),
                self._op("csrwr", csr="TLBIDX", value=self._tlbidx()),
                self._op("tlbwr")]

    def _tlbsrch(self):
        return [self._op("csrwr", csr="TLBEHI", value=self._va(mapped=0.5)),
                self._op("tlbsrch")]

    def _tlbrd(self):
        return [self._op("csrwr", csr="TLBIDX", value=self._tlbidx()), self._op("tlbrd")]

    def _tlbclr(self):
        return [self._op("csrwr", csr="TLBIDX", value=self._index()), self._op("tlbclr")]

    def _tlbflush(self):
        return [self._op("csrwr", csr="TLBIDX", value=self._index()), self._op("tlbflush")]

    def _invtlb(self):
        rng = self.rng
        op = rng.choice((0, 1, 2, 3, 4, 4, 5, 5, 5, 6, 6, 6, 7, rng.randrange(32)))
        ops = [self._op("invtlb", inv_op=op, asid=rng.choice(self.asids), va=self._va())]
        if op < 2 and rng.random() < 0.3:
            ops.append(ops[0])                # on an empty TLB: invalidates nothing
        return ops

    def _csr_setting(self):
        rng, g = self.rng, self.geom
        name = rng.choice(("ASID", "ASID", "CRMD", "CRMD", "MISC", "STLBPS"))
        if name == "ASID":
            value = rng.choice(self.asids)
        elif name == "CRMD":
            value = rng.choice((0, 3, rng.randrange(4)))
        elif name == "MISC":
            value = rng.randrange(8) << 16
        else:
            value = rng.choice(g.page_shifts + (rng.randrange(64),))
        return [self._op("csrwr", csr=name, value=value)]

    def _csrrd(self):
        return [self._op("csrrd", csr=self.rng.choice(CSR_NAMES))]

    def _refill_context(self):
        """A refill-handler-like sequence: TLBRELO0/1, TLBREHI.PS, TLBFILL or TLBWR."""
        rng = self.rng
        ops = [self._op("csrwr", csr="TLBRERA", value=1)] if rng.random() < 0.5 else []
        va = self._remember(self._va())
        ops += [self._op("csrwr", csr="TLBREHI", value=(va & ~0x1FFF) | self._ps()),
                self._op("csrwr", csr="TLBRELO0", value=self._elo()),
                self._op("csrwr", csr="TLBRELO1", value=self._elo())]
        ops.append(self._op(rng.choice(("tlbfill", "tlbfill", "tlbwr", "tlbsrch"))))
        if rng.random() < 0.7:
            ops.append(self._op("ertn"))
        return ops

    def _ertn(self):
        return [self._op("ertn")]

    def next(self) -> Op:
        while not self._pending:
            self.cpu = self.rng.randrange(self.cpus)
            maker = self.rng.choices(self._ops, weights=self._weights)[0][1]
            self._pending = maker()
        return self._pending.pop(0)

    def take(self, n: int) -> list[Op]:
        return [self.next() for _ in range(n)]
