"""The rules by which QEMU 7.2 departs from decisions.md (docs/spec/qemu.md), the
geometry QEMU can be, and the prediction of the exception QEMU raises for a translation."""

from __future__ import annotations

from loongtlb.sw_model.errors import InputError
from loongtlb.sw_model.geometry import Geometry

from ..backends import Mismatch
from ..trace import Op

QEMU_LAYOUT = {"grlen": 64, "valen": 48, "palen": 48, "asid_bits": 10, "stlb_ways": 8,
               "stlb_sets": 256, "mtlb_entries": 64}

#: the listed divergences (docs/spec/qemu.md has each with its D-row and the manual's words)
RULES = {
    "Q1": "TLBFILL places the entry in a random way of the set, or a random MTLB entry (D9)",
    "Q2": "TLBFILL outside the refill context writes E = 1 whatever TLBIDX.NE holds (D4)",
    "Q3": "an entry keeps each half's G and matches on TLBELO0's (D3)",
    "Q4": "TLBRD leaves ASID alone for a valid entry and clears ASID.ASID for an invalid one (D8)",
    "Q5": "TLBRD writes TLBEHI without the sign extension above VALEN (D17)",
    "Q6": "a CSR keeps every bit csrwr wrote: no reserved bits, no sign extension, any STLBPS "
          "(D17, D19)",
    "Q7": "TLBWR and TLBFILL write an MTLB entry whose PS is not listed (D19)",
    "Q8": "MISC is read-only and has no DWPL: csrwr MISC raises INE; stores at PLV <= 2 to "
          "a D = 0 page raise PME (D11)",
    "Q9": "a load checks NR before the privilege level (D11)",
    "Q10": "a page exception writes TLBEHI with VA bits 14:13 cleared (D13)",
    "Q11": "while TLBRERA.IsTLBR = 1 every exception goes through the refill entry and "
           "leaves ESTAT alone (D13)",
    "Q12": "INVTLB with op >= 7 raises INE (D15: illegal)",
    "Q13": "TLBRD and TLBWR do not check Index against the TLB's size: the program does not "
           "run them there, and applies D18 itself (D18)",
    "Q14": "a translated PA that is not RAM raises ADEM/ADEF (a bus error)",
    "Q15": "a VA whose bits 63:48 are not all equal raises ADEM/ADEF (D14)",
    "Q16": "a fetch that raises PNX or PPI never returns: QEMU reads BADI from the page it "
           "could not fetch, which raises the exception again; the program does not run it",
    "Q17": "a 4 KiB page (PS 12) is mapped through QEMU's 16 KiB pages: PA bits 13:12 "
           "come from the VA, not the PPN",
    "Q18": "TLBWR in the refill context with TLBIDX.NE = 1 writes E = 0 (D4)",
}


def check_geometry(geom: Geometry) -> None:
    """QEMU models one TLB, the LA464's; any other geometry is bad input."""
    differ = [f"{key} {getattr(geom, key)}" for key, want in QEMU_LAYOUT.items()
              if getattr(geom, key) != want]
    if differ:
        raise InputError(f"{geom.source}: QEMU's la464-loongarch-cpu is an LA64 TLB of 8 ways "
                         f"x 256 sets + 64 MTLB entries, VALEN = PALEN = 48, 10 ASID bits; "
                         f"this geometry has {', '.join(differ)}")


class Divergence(Mismatch):
    """QEMU and the model differ where no listed rule explains it."""

    other = "QEMU"

    def __init__(self, op: Op, key: str, model, qemu):
        super().__init__(op, key, model, qemu)
        self.args = (f"{op.kind} on cpu {op.cpu}: {key}: model {show_value(model)}, "
                     f"QEMU {show_value(qemu)}",)

    def __str__(self) -> str:
        return self.args[0]


def show_value(value) -> str:
    return f"{value:#x}" if isinstance(value, int) and not isinstance(value, bool) else \
        str(value)


def qemu_exception(hit, va: int, access: str, plv: int) -> str:
    """The exception QEMU 7.2 raises for a translation at a canonical VA, from the model's
    hit (Index, entry, PS) or None: the check order V, NX (fetch), NR (load), privilege,
    D (store), and no DWPL (Q8, Q9)."""
    if hit is None:
        return "TLBR"
    _, entry, ps = hit
    lo = entry.lo1 if (va >> ps) & 1 else entry.lo0
    bit = lambda n: lo >> n & 1  # noqa: E731
    if not bit(0):
        return {"load": "PIL", "store": "PIS", "fetch": "PIF"}[access]
    if access == "fetch" and bit(62):
        return "PNX"
    if access == "load" and bit(61):
        return "PNR"
    level = lo >> 2 & 3
    if (plv != level) if bit(63) else (plv > level):
        return "PPI"
    if access == "store" and not bit(1):
        return "PME"
    return "NONE"
