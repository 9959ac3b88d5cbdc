"""TLBFILL's placement: the first free slot, else the replacement policy (D9, D10)."""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from loongtlb.sw_model.geometry import Geometry

from .util import first_one

__all__ = ["Replacement"]


class Replacement(wiring.Component):
    """Where a TLBFILL goes, in the STLB set it selects and in the MTLB: the lowest slot
    with E = 0 (D9), else the policy's victim (D10): one 16-bit Galois LFSR for the TLB
    (``lfsr``), or one round-robin pointer per bank. The search ends at registers: the slots
    are valid 1 cycle after the E bits they were found in.

    Members
    -------
    stlb_e, mtlb_e : In
        The E bits of the STLB set a TLBFILL would write, and of the MTLB.
    stlb_slot, stlb_full, mtlb_slot, mtlb_full : Out
        The way (entry) chosen, and whether the bank was full, a cycle later.
    stlb_step, mtlb_step : In(1)
        A TLBFILL wrote a full bank: step the policy (the LFSR once for either bank).
    """

    LATENCY = {"slot": 1, "step": 1}

    def __init__(self, geom: Geometry):
        self.geom = geom
        ways, entries = max(1, geom.stlb_ways), geom.mtlb_entries
        super().__init__({
            "stlb_e": In(ways), "mtlb_e": In(entries),
            "stlb_slot": Out(range(max(2, ways))), "stlb_full": Out(1),
            "mtlb_slot": Out(range(max(2, entries))), "mtlb_full": Out(1),
            "stlb_step": In(1), "mtlb_step": In(1),
        })

    def elaborate(self, platform):
        g = self.geom
        m = Module()
        lfsr = Signal(16, init=g.seed, name="lfsr")
        lfsr_next = Mux(lfsr[0], (lfsr >> 1) ^ 0xB400, lfsr >> 1)

        def place(name, e_bits, n, slot_r, full_r, step):
            """First free of n, else the policy; registered."""
            free = first_one(m, ~e_bits, f"{name}_free")
            full = e_bits.all()
            slot = Signal(range(max(2, n)), name=f"{name}_victim")
            rr = Signal(range(max(2, n)), name=f"{name}_rr")
            policy_choice = (lfsr_next * n)[16:] if g.policy == "lfsr" else rr
            m.d.comb += slot.eq(Mux(full, policy_choice, free))
            m.d.sync += [slot_r.eq(slot), full_r.eq(full)]
            with m.If(step):
                m.d.sync += rr.eq(Mux(rr == n - 1, 0, rr + 1))

        if g.has_stlb:
            place("stlb", self.stlb_e, g.stlb_ways, self.stlb_slot, self.stlb_full,
                  self.stlb_step)
        place("mtlb", self.mtlb_e, g.mtlb_entries, self.mtlb_slot, self.mtlb_full,
              self.mtlb_step)
        if g.policy == "lfsr":
            with m.If(self.stlb_step | self.mtlb_step):
                m.d.sync += lfsr.eq(lfsr_next)
        return m
