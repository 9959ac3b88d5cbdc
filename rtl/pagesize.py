"""The page-size tables: what a page size (PS) selects, as small constant-case muxes."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from loongtlb.sw_model.geometry import Geometry

from .layouts import mask_groups
from .util import case_of

__all__ = ["PageSize"]


class PageSize(wiring.Component):
    """The tables of one page size ``ps``, only those asked for. Combinational: 0 cycles.

    An unlisted PS selects 0 everywhere (it never reaches a match: such writes are illegal,
    D19).

    Members
    -------
    ps : In(6)
        The page size (log2).
    vpn : In(VALEN - 13), with ``set``
        VA[VALEN-1:13].
    set : Out(set bits), with ``set``
        The STLB set that VA selects (D1): VA[PS + set bits : PS + 1].
    va : In(GRLEN), with ``odd``
    odd : Out(1), with ``odd``
        VA[PS]: 0 selects the entry's even half, 1 its odd half.
    compare : Out(mask groups), with ``compare``
        The compare mask: a 1 for each :func:`~rtl.layouts.mask_groups` range the page
        size compares.
    offset : Out(PALEN), with ``offset``
        The PA bits below PS (taken from the VA).
    """

    LATENCY = {"every output": 0}

    def __init__(self, geom: Geometry, *, set: bool = False, odd: bool = False,
                 compare: bool = False, offset: bool = False):
        self.geom = geom
        self._groups = mask_groups(geom)
        members = {"ps": In(6)}
        if set:
            members.update(vpn=In(geom.vppn_bits), set=Out(max(1, geom.set_bits)))
        if odd:
            members.update(va=In(geom.grlen), odd=Out(1))
        if compare:
            members["compare"] = Out(max(1, len(self._groups)))
        if offset:
            members["offset"] = Out(geom.palen)
        super().__init__(members)

    def elaborate(self, platform):
        g = self.geom
        m = Module()
        shifts = g.page_shifts
        if "set" in self.signature.members:
            table = {p: self.vpn[p - 12:p - 12 + g.set_bits] for p in shifts}
            m.d.comb += self.set.eq(case_of(m, self.ps, table, max(1, g.set_bits), "set"))
        if "odd" in self.signature.members:
            m.d.comb += self.odd.eq(case_of(m, self.ps, {p: self.va[p] for p in shifts}, 1,
                                            "odd"))
        if "compare" in self.signature.members:
            table = {p: sum(1 << k for k, (lo, _hi) in enumerate(self._groups) if p - 12 <= lo)
                     for p in shifts}
            m.d.comb += self.compare.eq(case_of(m, self.ps, table, len(self.compare),
                                                "compare"))
        if "offset" in self.signature.members:
            table = {p: ((1 << p) - 1) & ((1 << g.palen) - 1) for p in shifts}
            m.d.comb += self.offset.eq(case_of(m, self.ps, table, g.palen, "offset"))
        return m

