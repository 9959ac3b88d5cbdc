"""Data layouts of the RTL, built from the geometry: TLB entries and the CSRs.

CSR field positions come from ``sw_model.csr`` (the one module shared with the reference
model: pure data). Entry layouts are the RTL's own.
"""

from __future__ import annotations

from amaranth import Mux, unsigned
from amaranth.lib import data, enum

from loongtlb.sw_model.csr import csr_fields
from loongtlb.sw_model.geometry import Geometry

__all__ = ["Access", "Exc", "InsnOp", "half_layout", "tag_layout", "stlb_entry_layout",
           "mtlb_entry_layout", "csr_layout"]


class Access(enum.Enum, shape=2):
    LOAD = 0
    STORE = 1
    FETCH = 2


class Exc(enum.Enum, shape=4):
    """Translation outcome; PIL..PPI are ESTAT.Ecode + 1."""
    NONE = 0
    TLBR = 1
    PIL = 2
    PIS = 3
    PIF = 4
    PME = 5
    PNR = 6
    PNX = 7
    PPI = 8


class InsnOp(enum.Enum, shape=3):
    TLBSRCH = 0
    TLBRD = 1
    TLBWR = 2
    TLBFILL = 3
    TLBCLR = 4
    TLBFLUSH = 5
    INVTLB = 6
    ERTN = 7


def half_layout(geom: Geometry) -> data.StructLayout:
    """One half (even or odd page) of an entry. LA32 has no NR/NX/RPLV."""
    fields = {"v": 1, "d": 1, "plv": 2, "mat": 2, "ppn": geom.ppn_bits}
    if not geom.is_la32:
        fields.update(nr=1, nx=1, rplv=1)
    return data.StructLayout(fields)


def tag_layout(geom: Geometry) -> data.StructLayout:
    """What the match compares (E is kept apart, outside the storage)."""
    return data.StructLayout({"asid": geom.asid_bits, "g": 1, "vppn": geom.vppn_bits})


def stlb_entry_layout(geom: Geometry) -> data.StructLayout:
    """An STLB entry: no PS (the STLB uses STLBPS)."""
    half = half_layout(geom)
    return data.StructLayout({"tag": tag_layout(geom), "lo0": half, "lo1": half})


def mtlb_entry_layout(geom: Geometry) -> data.StructLayout:
    half = half_layout(geom)
    return data.StructLayout({"tag": tag_layout(geom), "ps": 6, "lo0": half, "lo1": half})


def mtlb_data_layout(geom: Geometry) -> data.StructLayout:
    """What the MTLB keeps in memory beside its tag registers: PS and both halves."""
    half = half_layout(geom)
    return data.StructLayout({"ps": 6, "lo0": half, "lo1": half})


def csr_layout(geom: Geometry, name: str) -> data.FlexibleLayout:
    """A CSR as a GRLEN-bit register with its fields at their architectural positions."""
    return data.FlexibleLayout(geom.grlen, {
        f.name: data.Field(unsigned(f.width), f.lsb) for f in csr_fields(geom)[name].values()})


def mask_groups(geom: Geometry) -> list[tuple[int, int]]:
    """The VPPN bit ranges ``[lo, hi)`` that the listed page sizes compare or ignore as one.

    An entry of page size PS compares VPPN bits at and above PS - 12 (VA bits above PS). So
    only the boundaries PS - 12 of the listed sizes matter: a group is the range between two
    of them, compared when PS - 12 <= lo. The range above the largest is compared by every
    entry and the range below the smallest by none, so neither needs a mask bit.
    """
    bounds = sorted({min(p - 12, geom.vppn_bits) for p in geom.page_shifts})
    return list(zip(bounds, bounds[1:], strict=False))



def e_bit_position(geom: Geometry, index):
    """:meth:`Geometry.e_bit_position` for an ``index`` that may be a Value (a formal
    checker's slot): where that slot's E bit is in the observation port's ``e_bits``."""
    if isinstance(index, int):
        return geom.e_bit_position(index)
    if not geom.stlb_ways:
        return index
    return Mux(index < geom.stlb_entries, geom.stlb_e_bit_position(index),
               geom.mtlb_e_bits_offset + index)
