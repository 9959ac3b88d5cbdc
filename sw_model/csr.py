"""CSR numbers, field layouts and write masks (interfaces.md section 2), and other constants.

This is the only module the reference model and the RTL share: pure data about where fields
sit. Behaviour (what an instruction does with a field) is written twice, once on each side.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from .geometry import Geometry

__all__ = ["CSR", "CSR_NAMES", "Field", "csr_fields", "write_mask", "elo_fields",
           "EXC_CODES", "EXC_NAMES", "ACCESSES", "sign_extended"]

#: CSR name -> CSR number (LoongArch manual; confirmed against Linux and QEMU)
CSR = {
    "CRMD": 0x0, "MISC": 0x3, "ESTAT": 0x5, "BADV": 0x7,
    "TLBIDX": 0x10, "TLBEHI": 0x11, "TLBELO0": 0x12, "TLBELO1": 0x13,
    "ASID": 0x18, "STLBPS": 0x1E, "PRCFG3": 0x23,
    "TLBRBADV": 0x89, "TLBRERA": 0x8A, "TLBRELO0": 0x8C, "TLBRELO1": 0x8D, "TLBREHI": 0x8E,
}
CSR_NAMES = tuple(CSR)

#: translation exceptions: name -> ESTAT.Ecode (TLBR writes no Ecode, D13)
EXC_CODES = {"PIL": 0x1, "PIS": 0x2, "PIF": 0x3, "PME": 0x4, "PNR": 0x5, "PNX": 0x6,
             "PPI": 0x7}
#: every translation outcome, in a fixed order (the RTL encodes them by position)
EXC_NAMES = ("NONE", "TLBR", "PIL", "PIS", "PIF", "PME", "PNR", "PNX", "PPI")
ACCESSES = ("load", "store", "fetch")


@dataclass(frozen=True)
class Field:
    name: str
    lsb: int
    width: int
    #: read-only: csrwr leaves it alone (constants and hardware-written fields)
    ro: bool = False

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb

    def get(self, value: int) -> int:
        return (value >> self.lsb) & ((1 << self.width) - 1)

    def put(self, value: int, field_value: int) -> int:
        return (value & ~self.mask) | ((field_value << self.lsb) & self.mask)


@cache
def elo_fields(geom: Geometry) -> dict[str, Field]:
    """TLBELO0/1 and TLBRELO0/1: LA64 PPN [PALEN-1:12] with NR/NX/RPLV; LA32 PPN [PALEN-5:8]."""
    fields = [Field("V", 0, 1), Field("D", 1, 1), Field("PLV", 2, 2), Field("MAT", 4, 2),
              Field("G", 6, 1)]
    if geom.is_la32:
        fields.append(Field("PPN", 8, geom.ppn_bits))
    else:
        fields += [Field("PPN", 12, geom.ppn_bits), Field("NR", 61, 1), Field("NX", 62, 1),
                   Field("RPLV", 63, 1)]
    return {f.name: f for f in fields}


@cache
def csr_fields(geom: Geometry) -> dict[str, dict[str, Field]]:
    """Every CSR's fields. Bits not covered by a field read 0 and ignore writes."""
    vppn = Field("VPPN", 13, geom.vppn_bits)
    elo = elo_fields(geom)
    table = {
        "CRMD": [Field("PLV", 0, 2)],
        "MISC": [Field("DWPL", 16, 3)],
        "ESTAT": [Field("Ecode", 16, 6, ro=True), Field("EsubCode", 22, 9, ro=True)],
        "BADV": [Field("VA", 0, geom.grlen)],
        "TLBIDX": [Field("Index", 0, geom.index_bits), Field("PS", 24, 6), Field("NE", 31, 1)],
        "TLBEHI": [vppn],
        "TLBELO0": list(elo.values()),
        "TLBELO1": list(elo.values()),
        "ASID": [Field("ASID", 0, geom.asid_bits), Field("ASIDBITS", 16, 8, ro=True)],
        "STLBPS": [Field("PS", 0, 6)],
        "PRCFG3": [Field("TLBType", 0, 4, ro=True), Field("MTLBEntries", 4, 8, ro=True),
                   Field("STLBWays", 12, 8, ro=True), Field("STLBSets", 20, 6, ro=True)],
        "TLBRBADV": [Field("VA", 0, geom.grlen)],
        "TLBRERA": [Field("IsTLBR", 0, 1)],
        "TLBRELO0": list(elo.values()),
        "TLBRELO1": list(elo.values()),
        "TLBREHI": [Field("PS", 0, 6), vppn],
    }
    return {name: {f.name: f for f in fs} for name, fs in table.items()}


def write_mask(geom: Geometry, name: str) -> int:
    """Bits a csrwr may change (before the STLBPS rule of D19)."""
    mask = 0
    for f in csr_fields(geom)[name].values():
        if not f.ro:
            mask |= f.mask
    return mask


def sign_extended(geom: Geometry, name: str) -> bool:
    """TLBEHI and TLBREHI read bits [GRLEN-1:VALEN] as copies of bit VALEN-1 (D17)."""
    return name in ("TLBEHI", "TLBREHI") and geom.valen < geom.grlen
