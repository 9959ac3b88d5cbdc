"""The formal properties by name (``loongtlb prove``): a table without the HDL, so that the
command line lists them without loading Amaranth. :mod:`.formal` builds each one."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PROPERTIES", "Property"]


@dataclass(frozen=True)
class Property:
    name: str
    summary: str
    #: "prove" (k-induction) or "bmc" (bounded), what `loongtlb prove` runs by default
    mode: str
    #: the default depth in cycles (BMC), or the induction length
    depth: int


PROPERTIES = {p.name: p for p in [
    Property("handshake", "a lookup answers exactly lookup_latency cycles after its request; "
             "an idle unit accepts an instruction and finishes it within its cycle budget",
             "prove", 7),
    Property("written_hit", "after TLBWR/TLBFILL writes a slot with E = 1, a lookup in that "
             "page under its ASID (or G) returns the entry's PA, MAT and exception (D11, D12), "
             "unless that lookup matched several entries", "prove", 7),
    Property("invalidated_miss", "every slot holds what TLBWR, TLBFILL, INVTLB 0-6, TLBCLR "
             "and TLBFLUSH leave (D4, D15, D16, D18, D19); a lookup no entry matches raises "
             "TLBR; refused instructions say so", "prove", 7),
    Property("search_read", "TLBSRCH finds the slot when it matches (D6, D7), and TLBRD "
             "returns what was written (D8, D18)", "prove", 7),
    Property("multi_hit", "the sticky multi-hit flag rises exactly when a lookup or TLBSRCH "
             "matches two valid entries (D7)", "prove", 7),
    Property("exceptions", "every lookup returns the lowest matching entry's result or TLBR, "
             "and writes the CSRs of D13 and no other; ERTN clears IsTLBR only", "prove", 7),
    Property("fill_placement", "TLBFILL writes the lowest free slot of its set or the MTLB, "
             "else the replacement policy's victim (D9, D10); an unlisted PS is illegal (D19)",
             "prove", 7),
]}
