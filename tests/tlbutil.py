"""Small helpers for the directed tests. Bit positions are written out here on purpose, not
taken from sw_model.csr, so that a wrong shared layout cannot hide."""

from __future__ import annotations

E_NE = 1 << 31  # TLBIDX.NE


def elo(ppn, v=1, d=1, plv=0, mat=1, g=0, nr=0, nx=0, rplv=0):
    """An LA64 TLBELO value."""
    return (v | d << 1 | plv << 2 | mat << 4 | g << 6 | ppn << 12 | nr << 61 | nx << 62
            | rplv << 63)


def elo32(ppn, v=1, d=1, plv=0, mat=1, g=0):
    """An LA32 TLBELO value: PPN at bit 8."""
    return v | d << 1 | plv << 2 | mat << 4 | g << 6 | ppn << 8


def tlbidx(index=0, ps=14, ne=0):
    return index | ps << 24 | ne << 31


def write(tlb, **csrs):
    for name, value in csrs.items():
        tlb.csrwr(name, value)


def fill(tlb, va, lo0, lo1, ps=14, asid=None, ne=0):
    """TLBFILL of the pair holding ``va``; returns the result (slot, illegal, multi_hit)."""
    if asid is not None:
        tlb.csrwr("ASID", asid)
    write(tlb, TLBEHI=va, TLBELO0=lo0, TLBELO1=lo1, TLBIDX=tlbidx(0, ps, ne))
    return tlb.tlbfill()


def wr(tlb, index, va, lo0, lo1, ps=14, ne=0):
    write(tlb, TLBEHI=va, TLBELO0=lo0, TLBELO1=lo1, TLBIDX=tlbidx(index, ps, ne))
    return tlb.tlbwr()


def read(tlb, index):
    """TLBRD of a slot; returns the result dict (TLBIDX TLBEHI TLBELO0 TLBELO1 ASID)."""
    tlb.csrwr("TLBIDX", index)
    return tlb.tlbrd()


def exc(tlb, va, access="load"):
    return tlb.translate(va, access)["exc"]


def csrs(tlb):
    from loongtlb.sw_model.csr import CSR_NAMES
    return {name: tlb.csrrd(name) for name in CSR_NAMES}
