"""The rules by which QEMU 7.2 departs from decisions.md (docs/spec/qemu.md), the
geometry QEMU can be, and the prediction of the exception QEMU raises for a translation."""

from __future__ import annotations

from loongtlb.sw_model.errors import InputError
from loongtlb.sw_model.geometry import Geometry

from ..backends import Mismatch
from ..trace import Op, show

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
    "Q19": "INVTLB op 5 and 6 look at every STLB entry, not only those of the VA's set (D15)",
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
    """QEMU and the model differ where no listed rule explains it, or (``model_only``) the
    model departs from what decisions.md says where QEMU follows a rule of its own:
    ``model`` is then what the D-row gives and ``qemu`` what the model did."""

    other = "QEMU"

    def __init__(self, op: Op, key: str, model, qemu, model_only: bool = False):
        super().__init__(op, key, model, qemu)
        names = ("decisions.md", "model") if model_only else ("model", "QEMU")
        self.detail = (f"{key}: {names[0]} {show(model)}, {names[1]} "
                       f"{show(qemu)}")
        self.args = (f"{op.kind} on cpu {op.cpu}: {self.detail}",)

    def __str__(self) -> str:
        return self.args[0]


#: the bits csrrd reads back of each CSR the unit has, on la464 (interfaces.md section 2,
#: D17), independent of the model's own tables: the check holds the model to them
_ELO = 0x3 | 0x3 << 2 | 0x3 << 4 | 1 << 6 | ((1 << 36) - 1) << 12 | 0x7 << 61
CSR_BITS = {"CRMD": 0x3, "MISC": 0x7 << 16, "TLBIDX": 0xFFF | 0x3F << 24 | 1 << 31,
            "TLBEHI": ((1 << 35) - 1) << 13, "TLBELO0": _ELO, "TLBELO1": _ELO,
            "ASID": 0x3FF, "TLBRBADV": (1 << 64) - 1, "BADV": (1 << 64) - 1, "TLBRERA": 1,
            "TLBREHI": ((1 << 35) - 1) << 13 | 0x3F, "TLBRELO0": _ELO, "TLBRELO1": _ELO}


def csr_view(name: str, value: int, old: int, page_shifts) -> int:
    """What csrrd reads of CSR ``name`` after csrwr ``value`` (``old``: what it read
    before): the CSR's bits of the value; ASID.ASIDBITS 10; TLBEHI and TLBREHI with bits
    63:48 copying bit 47 (D17); STLBPS only a listed size (D19); ESTAT and PRCFG3
    unchanged."""
    if name in ("ESTAT", "PRCFG3"):
        return old
    if name == "STLBPS":
        return value & 0x3F if value & 0x3F in page_shifts else old
    view = value & CSR_BITS[name]
    if name == "ASID":
        view |= 10 << 16
    if name in ("TLBEHI", "TLBREHI") and view >> 47 & 1:
        view |= 0xFFFF << 48
    return view


def half(hit, va: int) -> int:
    """The half (a TLBELO image without G) of the hit entry (Index, entry, PS) that VA[PS]
    selects."""
    _, entry, ps = hit
    return entry.lo1 if (va >> ps) & 1 else entry.lo0


def privileged(lo: int, plv: int) -> bool:
    """D12 for a half: RPLV = 0, PLV <= the page's; RPLV = 1, PLV equal to it."""
    level = lo >> 2 & 3
    return plv == level if lo >> 63 & 1 else plv <= level


def qemu_exception(hit, va: int, access: str, plv: int) -> str:
    """The exception QEMU 7.2 raises for a translation at a canonical VA, from the model's
    hit (Index, entry, PS) or None: the check order V, NX (fetch), NR (load), privilege,
    D (store), and no DWPL (Q8, Q9)."""
    if hit is None:
        return "TLBR"
    lo = half(hit, va)
    bit = lambda n: lo >> n & 1  # noqa: E731
    if not bit(0):
        return {"load": "PIL", "store": "PIS", "fetch": "PIF"}[access]
    if access == "fetch" and bit(62):
        return "PNX"
    if access == "load" and bit(61):
        return "PNR"
    if not privileged(lo, plv):
        return "PPI"
    if access == "store" and not bit(1):
        return "PME"
    return "NONE"
