"""TLBFILL's placement: the first free slot, else the replacement policy (D9, D10)."""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from loongtlb.sw_model.geometry import Geometry

from .util import first_one

__all__ = ["Replacement", "victim_signature"]


def victim_signature(geom: Geometry) -> wiring.Signature:
    """TLBFILL's placement as the instruction unit sees it: the slot chosen in each bank
    (``stlb_slot``, a way; ``mtlb_slot``, an entry) and whether the bank was full, and the
    steps of the policy it asks for (``stlb_step``, ``mtlb_step``: a TLBFILL wrote a full
    bank)."""
    ways, entries = max(1, geom.stlb_ways), geom.mtlb_entries
    return wiring.Signature({
        "stlb_slot": In(range(max(2, ways))), "stlb_full": In(1),
        "mtlb_slot": In(range(max(2, entries))), "mtlb_full": In(1),
        "stlb_step": Out(1), "mtlb_step": Out(1),
    })


class Replacement(wiring.Component):
    """Where a TLBFILL goes, in the STLB set it selects and in the MTLB: the lowest slot
    with E = 0 (D9), else the policy's victim (D10): one 16-bit Galois LFSR for the TLB
    (``lfsr``), or one round-robin pointer per bank. The slots are valid 1 cycle after the
    E bits they are found in: the STLB set's come registered (the instruction unit's
    ``set_e``) and the search ends at the slot; the MTLB's E bits are registers, and the slot
    found in them is registered.

    Members
    -------
    stlb_e, mtlb_e : In
        The E bits of the STLB set a TLBFILL would write (registered: the slot comes in
        the same cycle), and of the MTLB (a cycle before its slot).
    choice : In(victim_signature)
        The way (entry) chosen, and whether the bank was full, from the E bits of a cycle
        before; a step of the policy (the LFSR once for either bank).
    state : Out(32), with ``state=True``
        The policy's state, for a formal checker: ``lfsr``, the LFSR in bits 0-15;
        ``round_robin``, the STLB's and the MTLB's pointers in bits 16-23 and 24-31.
    """

    LATENCY = {"slot": 1, "step": 1}

    def __init__(self, geom: Geometry, state: bool = False):
        self.geom = geom
        ways, entries = max(1, geom.stlb_ways), geom.mtlb_entries
        members = {
            "stlb_e": In(ways), "mtlb_e": In(entries), "choice": In(victim_signature(geom)),
        }
        if state:
            members["state"] = Out(32)
        super().__init__(members)

    def elaborate(self, platform):
        g = self.geom
        m = Module()
        lfsr = Signal(16, init=g.seed, name="lfsr")
        lfsr_next = Mux(lfsr[0], (lfsr >> 1) ^ 0xB400, lfsr >> 1)

        def place(name, e_bits, n, slot_out, full_out, step, domain):
            """First free of n, else the policy; in ``domain`` (``sync``: registered)."""
            free = first_one(m, ~e_bits, f"{name}_free")
            full = e_bits.all()
            rr = Signal(range(max(2, n)), name=f"{name}_rr")
            policy_choice = (lfsr_next * n)[16:] if g.policy == "lfsr" else rr
            m.d[domain] += [full_out.eq(full), slot_out.eq(Mux(full, policy_choice, free))]
            with m.If(step):
                m.d.sync += rr.eq(Mux(rr == n - 1, 0, rr + 1))
            return rr

        ch = self.choice
        stlb_rr = Const(0, 8)
        if g.has_stlb:
            stlb_rr = place("stlb", self.stlb_e, g.stlb_ways, ch.stlb_slot, ch.stlb_full,
                            ch.stlb_step, "comb")
        mtlb_rr = place("mtlb", self.mtlb_e, g.mtlb_entries, ch.mtlb_slot, ch.mtlb_full,
                        ch.mtlb_step, "sync")
        if "state" in self.signature.members:
            # the state of the policy in use only
            state = lfsr if g.policy == "lfsr" else (stlb_rr << 16) | (mtlb_rr << 24)
            m.d.comb += self.state.eq(state)
        if g.policy == "lfsr":
            with m.If(ch.stlb_step | ch.mtlb_step):
                m.d.sync += lfsr.eq(lfsr_next)
        return m
