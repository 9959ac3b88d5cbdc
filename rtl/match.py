"""The match block shared by the STLB and the MTLB (coreblocks' TLBCAM is the model)."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from loongtlb.sw_model.geometry import Geometry

from .layouts import mask_groups, tag_layout
from .util import priority


class Match(wiring.Component):
    """Compares ``n`` entry tags with one key. Combinational: 0 cycles.

    ``hits[i] = e[i] & (tags[i].g | tags[i].asid == key_asid) & the VPPN bits at and above
    the entry's PS + 1 equal``. Those bits are given per entry as ``cares[i]``, one bit per
    VPPN bit (1: compared), made by :func:`care_of` from the entry's mask. V is not part of
    the match.

    Members
    -------
    e, tags, cares : In
        Per entry: the E bit, the tag (ASID, G, VPPN), the VPPN bits compared.
    key_vpn, key_asid : In
        VA[VALEN-1:13] and the ASID to look up.
    hits : Out(n)
        Every match.
    asid_eq : Out(n)
        Per entry, ``tags[i].asid == key_asid`` (G aside): INVTLB's conditions use it.
    first_onehot, first : Out
        The lowest-numbered match, one-hot and as an index.
    hit, multi : Out(1)
        At least one match; more than one.
    """

    def __init__(self, geom: Geometry, n: int):
        self.n = n
        super().__init__({
            "e": In(n),
            "tags": In(data.ArrayLayout(tag_layout(geom), n)),
            "cares": In(data.ArrayLayout(geom.vppn_bits, n)),
            "key_vpn": In(geom.vppn_bits),
            "key_asid": In(geom.asid_bits),
            "hits": Out(n),
            "asid_eq": Out(n),
            "first_onehot": Out(n),
            "first": Out(max(1, ceil_log2(n))),
            "hit": Out(1),
            "multi": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        hits = []
        m.d.comb += self.asid_eq.eq(Cat(self.tags[i].asid == self.key_asid
                                        for i in range(self.n)))
        for i in range(self.n):
            tag = self.tags[i]
            same_page = ((tag.vppn ^ self.key_vpn) & self.cares[i]) == 0
            hits.append(self.e[i] & (tag.g | self.asid_eq[i]) & same_page)
        m.d.comb += self.hits.eq(Cat(*hits))
        first_onehot, first, hit, multi = priority(m, self.hits, "first")
        m.d.comb += [self.first_onehot.eq(first_onehot), self.first.eq(first),
                     self.hit.eq(hit), self.multi.eq(multi)]
        return m


def care_of(geom: Geometry, mask: Value) -> Value:
    """The VPPN bits an entry compares, from its mask (one bit per
    :func:`~rtl.layouts.mask_groups` range, 1: compared): the range above the largest page
    size always, the one below the smallest never.

    Pure wiring, each mask bit repeated over its range. Made once per entry and shared by
    every :class:`Match`, it lets a match compare the whole VPPN with one AND where a test
    per range would cost a simulator one operation per range, per entry and per port.
    """
    groups = mask_groups(geom)
    low = groups[0][0] if groups else min(min(p - 12 for p in geom.page_shifts), geom.vppn_bits)
    top = groups[-1][1] if groups else low
    parts = [Const(0, low)] + [mask[k].replicate(hi - lo) for k, (lo, hi) in enumerate(groups)]
    parts.append(Const(-1, geom.vppn_bits - top))
    return Cat(*parts)
