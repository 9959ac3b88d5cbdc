"""The formal harness of the TLB unit: a driver that turns free inputs into a legal sequence
of trace ops, and a checker written from decisions.md that asserts one property at a time.

The driver issues at most one op per cycle: a CSR write, an instruction (held until
``insn_done``) or a lookup on port 0 (one per cycle, pipelined). The solver chooses the op
and its operands each cycle; the ``ev_*`` signals name what was issued, so a counterexample
reads back as a trace (:mod:`.prove`).

The checker mirrors TLB slots from the architecture's rules alone: what TLBWR and TLBFILL
write (D3-D5, D9, D18, D19), what INVTLB, TLBCLR and TLBFLUSH remove (D15, D16), how a
lookup matches (D1, D14, D21) and what it returns (D11-D13). A *shadow* mirrors one slot
the solver picks (held constant); the *mirror* holds every slot, for the properties that
need to know that nothing else matches. It shares with the RTL only field layouts and
constants (``rtl.layouts``, ``sw_model.csr``).
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Cat, Const, Module, Mux, Signal, Value
from amaranth.hdl import Assert, Assume, ClockDomain, Cover
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from loongtlb.rtl.csrfile import CSRFile
from loongtlb.rtl.insn import InstructionUnit
from loongtlb.rtl.layouts import Access, Exc, InsnOp, csr_layout, e_bit_position, half_layout
from loongtlb.rtl.unit import TLBUnit
from loongtlb.rtl.util import delayed
from loongtlb.sw_model.csr import CSR, CSR_NAMES, EXC_CODES
from loongtlb.sw_model.geometry import Geometry

from .properties import PROPERTIES

__all__ = ["Harness", "WRITABLE_CSRS", "budgets"]


#: the CSRs the driver may write, by their position in this tuple
WRITABLE_CSRS = tuple(name for name in CSR_NAMES if name != "PRCFG3")


def budgets(geom: Geometry) -> dict[str, int]:
    """The most cycles each instruction may take, from the instruction unit's latency data
    (``InstructionUnit.CYCLES``; INVTLB 2-4 sweeps the occupied sets: at most sets +
    ``SWEEP_CYCLES``)."""
    c = InstructionUnit.CYCLES
    table = {k: v for k, v in c.items() if isinstance(v, int)}
    table["INVTLB 2-4"] = geom.stlb_sets + InstructionUnit.SWEEP_CYCLES
    return table


class HarnessSignature(wiring.Signature):
    """The free inputs: each cycle's op kind and operands (``f_*``), the shadow slot
    (``f_slot``, held by an assumption), and the clock."""

    def __init__(self, geom: Geometry):
        super().__init__({
            "f_kind": In(2), "f_csr": In(4), "f_wdata": In(geom.grlen), "f_op": In(InsnOp),
            "f_inv_op": In(5), "f_asid": In(10), "f_va": In(geom.grlen), "f_access": In(2),
            "f_slot": In(geom.index_bits), "clk": In(1),
        })


#: f_kind values
NOP, CSRWR, INSN, LOOKUP = range(4)


class Harness(wiring.Component):
    """The unit, its driver and the checker of one property (``prop``, a name of
    :data:`PROPERTIES`). ``unit_class`` swaps in another TLBUnit (the seeded bugs).

    ``invariants`` (default on) also asserts what the unit holds inside (every mirrored
    entry's contents and compare bits, the replacement's state): k-induction needs them. Off,
    only what a trace shows is asserted (results, CSRs, E bits), so that a counterexample is
    one that ``replay --backend cosim`` reproduces."""

    def __init__(self, geom: Geometry, prop: str, unit_class=TLBUnit, invariants: bool = True):
        if prop not in PROPERTIES:
            raise ValueError(f"unknown property {prop!r}")
        self.geom, self.prop, self.unit_class = geom, prop, unit_class
        self.invariants = invariants
        super().__init__(HarnessSignature(geom))

    def elaborate(self, platform):
        g = self.geom
        m = Module()
        # no reset: every register starts from its init value (the unit's reset state, D20)
        m.domains.sync = cd = ClockDomain(reset_less=True)
        m.d.comb += cd.clk.eq(self.clk)
        dut = m.submodules.dut = self.unit_class(g, observe="contents")
        d = self._drive(m, dut)
        csr = {name: data.View(csr_layout(g, name), getattr(dut.obs.csr, name))
               for name in CSR_NAMES}
        k = SimpleNamespace(m=m, g=g, dut=dut, d=d, csr=csr, spec=Spec(g, csr))
        # every property asserts the handshake too: its induction needs an idle unit to be
        # idle (the instruction unit's state follows the driver's)
        self._check_handshake(k)
        if self.prop != "handshake":
            getattr(self, f"_check_{self.prop}")(k)
        return m

    # ---- the driver ---------------------------------------------------------------------
    def _drive(self, m, dut) -> SimpleNamespace:
        g = self.geom
        L = g.lookup_latency
        d = SimpleNamespace()
        # Assumptions on the free inputs: each names the constraint real use satisfies
        # the trace's CSRs only (the port's other numbers read 0 and ignore writes)
        m.d.comb += Assume(self.f_csr < len(WRITABLE_CSRS))
        # an access is a load, a store or a fetch (the port's fourth code is not one)
        m.d.comb += Assume(self.f_access <= Access.FETCH.value)
        # the slot the shadow follows holds still (the solver picks it once)
        first = Signal(init=1, name="first")
        slot_held = Signal(g.index_bits, name="slot_held")
        m.d.sync += [first.eq(0), slot_held.eq(self.f_slot)]
        m.d.comb += Assume(first | (self.f_slot == slot_held))

        # what is in flight: the instruction (operands latched) and the lookups (per stage)
        d.busy = Signal(name="insn_busy")
        d.op = Signal(InsnOp, name="insn_op_l")
        d.inv_op, d.asid = Signal(5, name="inv_op_l"), Signal(10, name="asid_l")
        d.va = Signal(g.grlen, name="va_l")
        d.count = Signal(range(budgets(g)["INVTLB 2-4"] + 2), name="insn_cycles")
        # stage L + 1: the cycle after the response, whose edge lands its exception's CSR
        # writes (CSRFile.LATENCY); the driver waits through it, exception or not
        X = CSRFile.LATENCY["exception"] - 1
        stages = [Signal(name=f"lk{i}_valid") for i in range(L + X + 1)]
        pending = Cat(stages[1:]).any()               # requested, CSR writes not yet landed
        d.lk_va = [Signal(g.grlen, name=f"lk{i}_va") for i in range(L + X + 1)]
        d.lk_access = [Signal(Access, name=f"lk{i}_access") for i in range(L + X + 1)]
        # the ops meet neither each other nor a lookup in flight, up to the landing of its
        # CSR writes (TLBUnit's contract: csr_ready), apart from lookups themselves, one per
        # cycle
        quiet = ~d.busy & ~pending
        # no instruction part-way: the TLB holds what the last one left (lookups change it not)
        d.settled = ~d.busy
        kind = self.f_kind
        d.ev_csrwr = Signal(name="ev_csrwr")
        d.ev_insn = Signal(name="ev_insn")
        d.ev_lookup = Signal(name="ev_lookup")
        m.d.comb += [
            d.ev_csrwr.eq(quiet & (kind == CSRWR)),
            d.ev_insn.eq(quiet & (kind == INSN) & dut.insn_ready),
            d.ev_lookup.eq(~d.busy & (kind == LOOKUP)),
        ]
        csr_number = Signal(14, name="csr_number")
        with m.Switch(self.f_csr):
            for i, name in enumerate(WRITABLE_CSRS):
                with m.Case(i):
                    m.d.comb += csr_number.eq(CSR[name])
        m.d.comb += [dut.csr_addr.eq(csr_number), dut.csr_we.eq(d.ev_csrwr),
                     dut.csr_wdata.eq(self.f_wdata)]

        # the instruction: valid for one cycle when it is issued, operands held until done
        m.d.comb += [
            dut.insn_valid.eq(quiet & (kind == INSN)),
            dut.insn_op.eq(Mux(d.busy, d.op, self.f_op)),
            dut.insn_inv_op.eq(Mux(d.busy, d.inv_op, self.f_inv_op)),
            dut.insn_asid.eq(Mux(d.busy, d.asid, self.f_asid)),
            dut.insn_va.eq(Mux(d.busy, d.va, self.f_va)),
        ]
        d.cur_op = Signal(InsnOp, name="cur_op")
        d.cur_inv_op, d.cur_asid = Signal(5, name="cur_inv_op"), Signal(10, name="cur_asid")
        d.cur_va = Signal(g.grlen, name="cur_va")
        m.d.comb += [d.cur_op.eq(dut.insn_op), d.cur_inv_op.eq(dut.insn_inv_op),
                     d.cur_asid.eq(dut.insn_asid), d.cur_va.eq(dut.insn_va)]
        d.in_insn = Signal(name="in_insn")              # a cycle of an instruction
        m.d.comb += d.in_insn.eq(d.busy | d.ev_insn)
        with m.If(d.ev_insn):
            m.d.sync += [d.op.eq(self.f_op), d.inv_op.eq(self.f_inv_op),
                         d.asid.eq(self.f_asid), d.va.eq(self.f_va)]
        with m.If(d.in_insn & ~dut.insn_done):
            m.d.sync += [d.busy.eq(1), d.count.eq(d.count + 1)]
        with m.Else():
            m.d.sync += [d.busy.eq(0), d.count.eq(0)]
        # the instruction's last cycle, and its results at the edge that ends it
        d.done = Signal(name="done")
        m.d.comb += d.done.eq(d.in_insn & dut.insn_done)

        # the lookups: stage 0 is the request, stage L the response
        lp = dut.lookup[0]
        m.d.comb += [lp.valid.eq(d.ev_lookup), lp.va.eq(self.f_va),
                     lp.access.eq(self.f_access), lp.effect.eq(1),
                     stages[0].eq(d.ev_lookup), d.lk_va[0].eq(self.f_va),
                     d.lk_access[0].eq(self.f_access)]
        for i in range(1, L + X + 1):
            m.d.sync += [stages[i].eq(stages[i - 1]), d.lk_va[i].eq(d.lk_va[i - 1]),
                         d.lk_access[i].eq(d.lk_access[i - 1])]
        for p in range(1, g.lookup_ports):
            m.d.comb += dut.lookup[p].valid.eq(0)
        # the response's cycle: stage L, counted from the request in stage 0
        d.resp, d.resp_va, d.resp_access = stages[L], d.lk_va[L], d.lk_access[L]
        # an exception's CSR writes still to land (a response without one stalls nothing)
        d.landing = Signal(name="landing")
        m.d.sync += d.landing.eq(d.resp & (lp.exc.as_value() != Exc.NONE))
        return d

    # ---- helpers of the checks ----------------------------------------------------------
    #: ``value`` registered: what it was in the previous cycle
    _next = staticmethod(delayed)

    def _mirror(self, k, slots):
        """Mirrors of ``slots`` (Index values, constant or the shadow's), updated by every
        instruction's done cycle, and asserted equal to what the unit holds whenever no
        instruction is part-way: the invariant that lets the other assertions be proved by
        induction."""
        mirror = [SlotMirror(k, slot, f"m{i}") for i, slot in enumerate(slots)]
        for s in mirror:
            s.follow(k)
            s.assert_stored(k, self.invariants)
        return mirror

    # ---- the properties -----------------------------------------------------------------
    def _check_handshake(self, k):
        m, g, d, dut = k.m, k.g, k.d, k.dut
        lp = dut.lookup[0]
        # a response exactly when a request was made lookup_latency cycles before
        m.d.comb += Assert(lp.resp_valid == d.resp)
        # the CSR port waits exactly while a response's CSR writes are to land; an idle unit
        # takes an instruction then; nothing finishes that was not started
        m.d.comb += Assert(dut.csr_ready == ~d.landing)
        m.d.comb += Assert(d.busy | d.landing | dut.insn_ready)
        m.d.comb += Assert(~dut.insn_done | d.in_insn)
        if self.invariants:
            # for induction: the instruction unit is part-way exactly when the driver is
            m.d.comb += Assert(dut.obs.insn_busy == d.busy)
            # the STLB's occupied sets are those holding an E bit (INVTLB op 2-4 visits them)
            W, S = g.stlb_ways, g.stlb_sets
            for s in range(S if W else 0):
                held = Cat(dut.obs.e_bits[g.e_bit_position(w * S + s)]
                           for w in range(W)).any()
                m.d.comb += Assert(dut.obs.stlb_occupied[s] == held)
            # the copy of the MTLB's tags that TLBRD reads is the tags the match compares
            for i in range(g.mtlb_entries):
                m.d.comb += Assert(dut.obs.mtlb_tag_copies[i].as_value() ==
                                   dut.obs.entries[g.stlb_entries + i].tag.as_value())
        budget = Signal.like(d.count, name="budget")
        table = budgets(g)
        with m.Switch(d.cur_op):
            for op, key in ((InsnOp.TLBWR, "TLBWR"), (InsnOp.TLBFILL, "TLBFILL"),
                            (InsnOp.TLBSRCH, "TLBSRCH"), (InsnOp.TLBRD, "TLBRD"),
                            (InsnOp.ERTN, "ERTN"), (InsnOp.TLBFLUSH, "TLBFLUSH")):
                with m.Case(op):
                    m.d.comb += budget.eq(table[key])
            with m.Case(InsnOp.TLBCLR):
                in_stlb = k.csr["TLBIDX"].Index < g.stlb_entries
                m.d.comb += budget.eq(Mux(in_stlb, table["TLBCLR (STLB set)"],
                                          table["TLBCLR (MTLB)"]))
            with m.Case(InsnOp.INVTLB):
                with m.Switch(d.cur_inv_op):
                    with m.Case(0, 1):
                        m.d.comb += budget.eq(table["INVTLB 0/1"])
                    with m.Case(5, 6):
                        m.d.comb += budget.eq(table["INVTLB 5/6"])
                    with m.Case(2, 3, 4):
                        m.d.comb += budget.eq(table["INVTLB 2-4"])
                    with m.Default():                     # illegal: refused at once
                        m.d.comb += budget.eq(table["INVTLB (op above 6)"])
        # D19: STLBPS only ever holds a listed page size (what every check of a page relies on)
        m.d.comb += Assert(k.spec.listed(k.csr["STLBPS"].PS))
        # the cycle count of the instruction in flight never passes its budget
        m.d.comb += Assert(~d.in_insn | (d.count + 1 <= budget))
        m.d.comb += Cover(d.done & (d.count + 1 == table["INVTLB 2-4"]) &
                          (d.cur_op == InsnOp.INVTLB))

    def _check_written_hit(self, k):
        m, d, dut = k.m, k.d, k.dut
        (s,) = self._mirror(k, [self.f_slot])
        lp = dut.lookup[0]
        plv, dwpl, asid = k.csr["CRMD"].PLV, k.csr["MISC"].DWPL, k.csr["ASID"].ASID
        hit = d.resp & s.matches(k, d.resp_va, asid)
        want = k.spec.outcome(s.ps(k), s.lo0, s.lo1, d.resp_va, d.resp_access, plv, dwpl)
        # the response's cycle: its multi-hit, if any, shows at the next edge
        was_hit = self._next(m, hit, "was_hit")
        ok = Signal(name="result_ok")
        m.d.comb += ok.eq(k.spec.same(lp, want))
        was_ok = self._next(m, ok, "was_ok")
        # excused only when this lookup matched several entries (D7)
        was_multi = self._next(m, dut.obs.lookup_multi[0], "was_multi")
        m.d.comb += Assert(~was_hit | was_ok | was_multi)
        m.d.comb += Cover(was_hit & (self._next(m, want.exc, "was_exc") == Exc.NONE))

    def _check_invalidated_miss(self, k):
        m, g, d, dut = k.m, k.g, k.d, k.dut
        # every slot mirrored: its E bit and entry asserted (assert_stored), so an entry
        # removed by INVTLB, TLBCLR, TLBFLUSH or overwritten is gone from the unit too
        mirror = self._mirror(k, range(g.total_entries))
        csr = k.csr
        asid = csr["ASID"].ASID
        lp = dut.lookup[0]
        # a lookup that no entry matches raises TLBR
        none = ~Cat(*(s.matches(k, d.resp_va, asid) for s in mirror)).any()
        m.d.comb += Assert(~(d.resp & none) | (lp.exc.as_value() == Exc.TLBR))
        # a TLBSRCH that no entry matches sets NE (D6)
        srch = d.done & (d.cur_op == InsnOp.TLBSRCH)
        key_va = Cat(Const(0, 13), k.spec.key_vppn())
        missed = self._next(m, srch & ~Cat(*(s.matches(k, key_va, asid) for s in mirror)).any(),
                            "srch_missed")
        m.d.comb += Assert(~missed | csr["TLBIDX"].NE)
        # reachable: an entry written, then removed by INVTLB with an address
        removed = Cat(*(self._next(m, s.e, f"was_e{i}") & ~s.e
                        for i, s in enumerate(mirror))).any()
        m.d.comb += Cover(removed & (d.op == InsnOp.INVTLB) & (d.inv_op >= 5))
        # what is refused changes nothing (the mirror) and says so: INVTLB op 7 and above
        # (D15), TLBWR of an MTLB slot and TLBFILL with an unlisted PS (D19); nothing else
        index = csr["TLBIDX"].Index
        in_mtlb = (index >= g.stlb_entries) & (index < g.total_entries)
        unlisted = ~k.spec.listed(k.spec.new_entry(fill=False).ps)
        refused = Signal(name="refused")
        with m.Switch(d.cur_op):
            with m.Case(InsnOp.INVTLB):
                m.d.comb += refused.eq(d.cur_inv_op >= 7)
            with m.Case(InsnOp.TLBWR):
                m.d.comb += refused.eq(in_mtlb & unlisted)
            with m.Case(InsnOp.TLBFILL):
                m.d.comb += refused.eq(unlisted)
        m.d.comb += Assert(~d.done | (dut.insn_illegal == refused))

    def _check_search_read(self, k):
        m, g, d = k.m, k.g, k.d
        (s,) = self._mirror(k, [self.f_slot])
        csr = k.csr
        key_va = Cat(Const(0, 13), k.spec.key_vppn())
        srch = d.done & (d.cur_op == InsnOp.TLBSRCH)
        matched = self._next(m, srch & s.matches(k, key_va, csr["ASID"].ASID), "srch_match")
        was_srch = self._next(m, srch, "was_srch")
        old_idx = self._next(m, csr["TLBIDX"].as_value(), "old_tlbidx")
        old_idx = data.View(csr_layout(g, "TLBIDX"), old_idx)
        idx = csr["TLBIDX"]
        # D6/D7: a matching slot is found, or a lower one; what is found did match
        m.d.comb += Assert(~matched | (~idx.NE & (idx.Index <= self.f_slot)))
        m.d.comb += Assert(~was_srch | idx.NE | (idx.Index != self.f_slot) | matched)
        # a miss leaves Index; TLBSRCH never changes PS
        m.d.comb += Assert(~was_srch | ~idx.NE | (idx.Index == old_idx.Index))
        m.d.comb += Assert(~was_srch | (idx.PS == old_idx.PS))

        # TLBRD of the shadow's slot: D8
        rd = d.done & (d.cur_op == InsnOp.TLBRD) & (csr["TLBIDX"].Index == self.f_slot)
        was_rd = self._next(m, rd, "was_rd")
        e = self._next(m, s.present, "rd_e")
        want = {name: self._next(m, v, f"rd_{name}") for name, v in {
            "vppn": s.vppn, "ps": s.ps(k), "asid": s.asid, "g": s.g,
            "lo0": s.lo0.as_value(), "lo1": s.lo1.as_value()}.items()}
        old_asid = self._next(m, csr["ASID"].ASID, "old_asid")
        checks = [csr["TLBEHI"].VPPN == want["vppn"], idx.PS == want["ps"], ~idx.NE,
                  csr["ASID"].ASID == want["asid"]]
        for n in (0, 1):
            elo = csr[f"TLBELO{n}"]
            half = data.View(half_layout(g), want[f"lo{n}"])
            checks += [elo.G == want["g"]] + [
                getattr(elo, f.upper()) == getattr(half, f) for f in half_layout(g).members]
        empty = [csr["TLBEHI"].as_value() == 0, csr["TLBELO0"].as_value() == 0,
                 csr["TLBELO1"].as_value() == 0, idx.PS == 0, idx.NE,
                 csr["ASID"].ASID == old_asid]
        m.d.comb += Assert(~was_rd | Mux(e, all_of(checks), all_of(empty)))
        m.d.comb += Cover(was_rd & e)
        m.d.comb += Cover(matched)

    def _check_multi_hit(self, k):
        m, g, d, dut = k.m, k.g, k.d, k.dut
        mirror = self._mirror(k, range(g.total_entries))
        csr = k.csr
        asid = csr["ASID"].ASID
        flag = Signal(name="multi_want")
        look = [s.matches(k, d.resp_va, asid) for s in mirror]
        key_va = Cat(Const(0, 13), k.spec.key_vppn())
        srch = [s.matches(k, key_va, asid) for s in mirror]
        with m.If((d.resp & two_or_more(m, look, "look_two")) |
                  (d.done & (d.cur_op == InsnOp.TLBSRCH) & two_or_more(m, srch, "srch_two"))):
            m.d.sync += flag.eq(1)
        m.d.comb += Assert(~d.settled | (dut.multi_hit == flag))
        m.d.comb += Cover(flag)

    def _check_exceptions(self, k):
        m, g, d, dut = k.m, k.g, k.d, k.dut
        mirror = self._mirror(k, range(g.total_entries))
        csr = k.csr
        lp = dut.lookup[0]
        plv, dwpl, asid = csr["CRMD"].PLV, csr["MISC"].DWPL, csr["ASID"].ASID
        hits = [s.matches(k, d.resp_va, asid) for s in mirror]
        # D7: the lowest Index wins
        want = SimpleNamespace(exc=Signal(4, name="want_exc"),
                               pa=Signal(g.palen, name="want_pa"), mat=Signal(2, name="want_mat"))
        m.d.comb += want.exc.eq(Exc.TLBR)
        for s, hit in reversed(list(zip(mirror, hits, strict=True))):
            got = k.spec.outcome(s.ps(k), s.lo0, s.lo1, d.resp_va, d.resp_access, plv, dwpl)
            with m.If(hit):
                m.d.comb += [want.exc.eq(got.exc), want.pa.eq(got.pa), want.mat.eq(got.mat)]
        m.d.comb += Assert(~d.resp | k.spec.same(lp, want))
        # D13, at the edge that ends the cycle after the response (CSRFile.LATENCY)
        def landed(value, name):
            for i in range(CSRFile.LATENCY["exception"]):
                value = self._next(m, value, f"{name}{i}")
            return value
        was = landed(d.resp, "was_resp")
        exc = landed(want.exc, "was_exc")
        va = landed(d.resp_va, "was_va")
        estat = self._next(m, csr["ESTAT"].as_value(), "old_estat")
        vppn = va[13:g.valen]
        tlbr = all_of([csr["TLBRBADV"].as_value() == va, csr["TLBREHI"].VPPN == vppn,
                       csr["TLBRERA"].IsTLBR, csr["ESTAT"].as_value() == estat])
        code = Signal(6, name="want_ecode")
        with m.Switch(exc):
            for name, ecode in EXC_CODES.items():
                with m.Case(Exc[name]):
                    m.d.comb += code.eq(ecode)
        page = all_of([csr["BADV"].as_value() == va, csr["TLBEHI"].VPPN == vppn,
                       csr["ESTAT"].Ecode == code, csr["ESTAT"].EsubCode == 0])
        m.d.comb += Assert(~was | (exc == Exc.NONE) | Mux(exc == Exc.TLBR, tlbr, page))
        m.d.comb += Cover(was & (exc == Exc.PPI))
        # D13's list is complete: every other CSR keeps its value (TLBR keeps TLBREHI.PS)
        old = {name: self._next(m, csr[name].as_value(), f"old_{name}") for name in CSR_NAMES}
        kept = {name: csr[name].as_value() == old[name] for name in CSR_NAMES}
        old_rehi = data.View(csr_layout(g, "TLBREHI"), old["TLBREHI"])
        kept["TLBREHI"] = Mux(exc == Exc.TLBR, csr["TLBREHI"].PS == old_rehi.PS,
                              kept["TLBREHI"])
        written = {Exc.TLBR: ("TLBRBADV", "TLBRERA"), "page": ("BADV", "TLBEHI", "ESTAT")}
        for name in CSR_NAMES:
            by_tlbr, by_page = name in written[Exc.TLBR], name in written["page"]
            excused = Mux(exc == Exc.TLBR, by_tlbr, (exc != Exc.NONE) & by_page)
            m.d.comb += Assert(~was | excused | kept[name])
        # ERTN leaves the refill context (D13), and changes nothing else
        was_ertn = self._next(m, d.done & (d.cur_op == InsnOp.ERTN), "was_ertn")
        m.d.comb += Assert(~was_ertn | ~csr["TLBRERA"].IsTLBR)
        for name in CSR_NAMES:
            if name != "TLBRERA":
                m.d.comb += Assert(~was_ertn | kept[name])

    def _check_fill_placement(self, k):
        m, d, dut = k.m, k.d, k.dut
        fill = k.spec.fill_target(k)
        if self.invariants:
            # the invariant for induction: the unit's policy state is the checker's
            m.d.comb += Assert(~d.settled | (dut.obs.policy == fill.policy))
        fill_done = d.done & (d.cur_op == InsnOp.TLBFILL)
        m.d.comb += Assert(~fill_done | (dut.insn_illegal == ~fill.legal))
        m.d.comb += Assert(~fill_done | ~fill.legal | (dut.insn_slot == fill.slot))
        m.d.comb += Cover(fill_done & fill.legal & fill.full)


def pick(values, index):
    """``values[index]`` for a constant or a signal ``index`` (the first value when out of
    range)."""
    if isinstance(index, int):
        return values[index] if 0 <= index < len(values) else values[0]
    out = values[0]
    for i, v in enumerate(values[1:], 1):
        out = Mux(index == i, v, out)
    return out


def all_of(conds):
    return Cat(*conds).all()


def two_or_more(m, bits, name):
    """At least two of ``bits``."""
    seen, two = Const(0), Const(0)
    for b in bits:
        two = two | (seen & b)
        seen = seen | b
    sig = Signal(name=name)
    m.d.comb += sig.eq(two)
    return sig


class Spec:
    """The architecture's rules as expressions over the CSRs (views of ``obs.csr``)."""

    def __init__(self, geom: Geometry, csr):
        self.g, self.csr = geom, csr

    def by_ps(self, ps, table: dict, width: int):
        """``table[ps]`` for the listed page sizes (0 for any other)."""
        out = Const(0, width)
        for p, value in table.items():
            out = Mux(ps == p, value, out)
        return out

    def key_vppn(self):
        """TLBSRCH's key (D5): TLBREHI's VPPN in the refill context, else TLBEHI's."""
        csr = self.csr
        return Mux(csr["TLBRERA"].IsTLBR, csr["TLBREHI"].VPPN, csr["TLBEHI"].VPPN)

    def listed(self, ps):
        """``ps`` is one of the geometry's page sizes."""
        return Cat(*(ps == p for p in self.g.page_shifts)).any()

    def vppn_mask(self, ps):
        """The VPPN bits an entry of page size ``ps`` compares: VA bits above ``ps``."""
        n = self.g.vppn_bits
        full = (1 << n) - 1
        return self.by_ps(ps, {p: full & ~((1 << (p - 12)) - 1) for p in self.g.page_shifts}, n)

    def set_of(self, va, stlbps):
        """D1: the STLB set ``va`` selects under ``stlbps``."""
        g = self.g
        if g.set_bits == 0:
            return Const(0, 1)
        va = va[:g.valen]                 # bits at and above VALEN are ignored (D14)
        return self.by_ps(stlbps, {p: va[p + 1:p + 1 + g.set_bits] for p in g.page_shifts},
                          g.set_bits)

    def outcome(self, ps, lo0, lo1, va, access, plv, dwpl):
        """D11/D12 for a hit on an entry of page size ``ps``: exception, PA, MAT."""
        g = self.g
        odd = self.by_ps(ps, {p: va[p] for p in g.page_shifts}, 1)
        half = data.View(half_layout(g), Mux(odd, lo1.as_value(), lo0.as_value()))
        la64 = not g.is_la32
        nr = half.nr if la64 else Const(0)
        nx = half.nx if la64 else Const(0)
        rplv = half.rplv if la64 else Const(0)
        priv_ok = Mux(rplv, plv == half.plv, plv <= half.plv)
        dirty_ok = half.d | ((plv <= 2) & (dwpl >> plv)[0])
        exc = Mux(~half.v, Mux(access == Access.FETCH, Exc.PIF,
                               Mux(access == Access.STORE, Exc.PIS, Exc.PIL)),
              Mux(access == Access.FETCH, Mux(nx, Exc.PNX, Mux(priv_ok, Exc.NONE, Exc.PPI)),
              Mux(~priv_ok, Exc.PPI,
              Mux(access == Access.LOAD, Mux(nr, Exc.PNR, Exc.NONE),
                  Mux(dirty_ok, Exc.NONE, Exc.PME)))))
        offset = self.by_ps(ps, {p: (1 << p) - 1 for p in g.page_shifts}, g.palen)
        frame = Cat(Const(0, 12), half.ppn)[:g.palen]
        pa = (frame & ~offset) | (va[:g.palen] & offset)
        return SimpleNamespace(exc=exc, pa=pa, mat=half.mat)

    @staticmethod
    def same(lp, want):
        """The port's response is ``want``: the exception, and without one the PA and MAT."""
        exc = Value.cast(want.exc)
        return (lp.exc.as_value() == exc) & ((exc != Exc.NONE) |
                                       ((lp.pa == want.pa) & (lp.mat == want.mat)))

    def new_entry(self, fill: bool):
        """What TLBWR (``fill`` False) or TLBFILL would write (D3, D4, D5): a namespace of
        e, vppn, ps, asid, g, lo0, lo1, and whether PS is listed."""
        g, csr = self.g, self.csr
        istlbr = csr["TLBRERA"].IsTLBR
        lo0 = Mux(istlbr, csr["TLBRELO0"].as_value(), csr["TLBELO0"].as_value())
        lo1 = Mux(istlbr, csr["TLBRELO1"].as_value(), csr["TLBELO1"].as_value())
        lo0, lo1 = (data.View(csr_layout(g, "TLBELO0"), v) for v in (lo0, lo1))
        ps = Mux(istlbr, csr["TLBREHI"].PS, csr["TLBIDX"].PS)
        ne = csr["TLBIDX"].NE
        e = istlbr | ~ne if not (fill and g.tlbfill_ne == "ignore") else Const(1)
        listed = self.listed(ps)

        def half(elo):
            fields = {f: getattr(elo, f.upper()) for f in half_layout(g).members}
            return Cat(*(fields[f] for f in half_layout(g).members))
        return SimpleNamespace(
            e=e, vppn=self.key_vppn(), ps=ps,
            asid=csr["ASID"].ASID, g=lo0.G & lo1.G, lo0=half(lo0), lo1=half(lo1),
            listed=listed)

    def fill_target(self, k):
        """D9/D10: the slot TLBFILL writes now, from the unit's E bits and the checker's
        own replacement state; stepped when a legal TLBFILL finds its place full."""
        g, m, d = self.g, k.m, k.d
        new = self.new_entry(fill=True)
        stlbps = self.csr["STLBPS"].PS
        to_stlb = (new.ps == stlbps) if g.has_stlb else Const(0)
        e_bits = k.dut.obs.e_bits
        W, S, M = g.stlb_ways, g.stlb_sets, g.mtlb_entries
        set_ = self.set_of(Cat(Const(0, 13), new.vppn), stlbps)
        # the E bits of the place: the set's ways, or the MTLB
        stlb_e = [e_bits.word_select(set_, g.e_bits_pitch)[w] for w in range(W)]
        mtlb_e = [e_bits[g.e_bit_position(g.stlb_entries + i)] for i in range(M)]
        out = SimpleNamespace(legal=new.listed, full=Signal(name="fill_full"),
                              slot=Signal(g.index_bits, name="fill_slot"))
        fill_done = d.done & (d.cur_op == InsnOp.TLBFILL) & new.listed
        lfsr = Signal(16, init=g.seed if g.policy == "lfsr" else 1, name="spec_lfsr")
        step = Mux(lfsr[0], (lfsr >> 1) ^ 0xB400, lfsr >> 1)
        banks = [("mtlb", mtlb_e, lambda i: W * S + i)]
        if W:
            banks.insert(0, ("stlb", stlb_e, lambda w: w * S + set_))
        picks, policy = {}, [lfsr if g.policy == "lfsr" else Const(0, 16)]
        for bank, es, index in banks:
            n = len(es)
            free = Signal(range(n + 1), name=f"{bank}_free")
            m.d.comb += free.eq(n)
            for i in reversed(range(n)):
                with m.If(~es[i]):
                    m.d.comb += free.eq(i)
            full = Cat(*es).all()
            if g.policy == "lfsr":
                victim = (step * n) >> 16
            else:
                pointer = Signal(8, name=f"spec_rr_{bank}")
                victim = pointer
            pick = Mux(full, victim, free)
            picks[bank] = (index(pick), full)
            policy.append(pointer if g.policy != "lfsr" else Const(0, 8))
            taken = fill_done & full & ((to_stlb if bank == "stlb" else ~to_stlb))
            with m.If(taken):
                if g.policy == "lfsr":
                    m.d.sync += lfsr.eq(step)
                else:
                    m.d.sync += pointer.eq(Mux(pointer == n - 1, 0, pointer + 1))
        if W:
            m.d.comb += [out.slot.eq(Mux(to_stlb, picks["stlb"][0], picks["mtlb"][0])),
                         out.full.eq(Mux(to_stlb, picks["stlb"][1], picks["mtlb"][1]))]
        else:
            m.d.comb += [out.slot.eq(picks["mtlb"][0]), out.full.eq(picks["mtlb"][1])]
            policy.insert(1, Const(0, 8))               # no STLB pointer
        out.policy = Cat(*policy)
        return out


class SlotMirror:
    """One TLB slot as the architecture says it is: E, the tag, PS (MTLB) and both halves,
    changed only in the done cycle of an instruction, at the edge that ends it."""

    def __init__(self, k, slot, name):
        g = k.g
        self.slot = slot
        self.e = Signal(name=f"{name}_e")
        self.vppn = Signal(g.vppn_bits, name=f"{name}_vppn")
        self._ps = Signal(6, name=f"{name}_ps")
        self.asid = Signal(g.asid_bits, name=f"{name}_asid")
        self.g = Signal(name=f"{name}_g")
        self.lo0 = Signal(half_layout(g), name=f"{name}_lo0")
        self.lo1 = Signal(half_layout(g), name=f"{name}_lo1")
        S = g.stlb_sets
        # the slot exists (an Index at or above the total names none, D18) and holds an entry
        self.present = Signal(name=f"{name}_present")
        k.m.d.comb += self.present.eq(self.e & (slot < g.total_entries))
        self.in_stlb = Signal(name=f"{name}_in_stlb")
        self.set = Signal(max(1, g.set_bits), name=f"{name}_set")
        k.m.d.comb += [self.in_stlb.eq(slot < g.stlb_entries),
                       self.set.eq(slot % S if S > 1 else 0)]

    def ps(self, k):
        """The page size: STLBPS for an STLB slot (D8, D19), its own in the MTLB."""
        return Mux(self.in_stlb, k.csr["STLBPS"].PS, self._ps)

    def matches(self, k, va, asid):
        """D1, D14, D21: an entry matches ``va`` under ``asid``."""
        g, spec = k.g, k.spec
        ps = self.ps(k)
        vpn = va[13:g.valen]
        tag = (((vpn ^ self.vppn) & spec.vppn_mask(ps)) == 0) & (self.g | (self.asid == asid))
        same_set = ~self.in_stlb | (spec.set_of(va, k.csr["STLBPS"].PS) == self.set)
        return self.present & tag & same_set

    def follow(self, k):
        """TLBWR by Index; TLBFILL where the unit says it wrote (``fill_placement`` checks
        that place); the removals."""
        g, m, d, csr, spec = k.g, k.m, k.d, k.csr, k.spec
        op = d.cur_op
        index = csr["TLBIDX"].Index
        in_range = Value.cast(self.slot < g.total_entries)
        new = spec.new_entry(fill=True)
        wr = (op == InsnOp.TLBWR) & (index == self.slot) & (self.in_stlb | new.listed)
        fl = (op == InsnOp.TLBFILL) & new.listed & (k.dut.insn_slot == self.slot)
        with m.If(d.done & in_range):
            with m.If(wr | fl):
                m.d.sync += [
                    self.e.eq(Mux(fl, new.e, spec.new_entry(fill=False).e)),
                    self.vppn.eq(new.vppn), self._ps.eq(new.ps), self.asid.eq(new.asid),
                    self.g.eq(new.g), self.lo0.eq(new.lo0), self.lo1.eq(new.lo1)]
            with m.If(self._removes(k)):
                m.d.sync += self.e.eq(0)

    def assert_stored(self, k, contents: bool):
        """When no instruction is part-way, the unit holds this slot as mirrored: the E bit,
        and (``contents``) with E = 1 the tag, both halves, and in the MTLB the PS and the
        compare bits it implies."""
        g, m, d, obs, spec = k.g, k.m, k.d, k.dut.obs, k.spec
        if isinstance(self.slot, int) and self.slot >= g.total_entries:
            return
        in_range = Value.cast(self.slot < g.total_entries)
        e = (obs.e_bits >> e_bit_position(g, self.slot))[0]
        entry = pick([obs.entries[i].as_value() for i in range(g.total_entries)], self.slot)
        entry = data.View(obs.entries.shape().elem_shape, entry)
        same = all_of([entry.tag.vppn == self.vppn, entry.tag.asid == self.asid,
                       entry.tag.g == self.g, entry.lo0.as_value() == self.lo0.as_value(),
                       entry.lo1.as_value() == self.lo1.as_value()])
        if g.mtlb_entries:
            care = pick([obs.cares[i] for i in range(g.mtlb_entries)],
                        self.slot - g.stlb_entries)
            same = same & (self.in_stlb | ((entry.ps == self._ps) & spec.listed(self._ps) &
                                           (care == spec.vppn_mask(self._ps))))
        if not contents:
            same = Const(1)
        m.d.comb += Assert(~d.settled | ~in_range | ((e == self.e) & (~self.e | same)))

    def _removes(self, k):
        """INVTLB (D15), TLBCLR and TLBFLUSH (D16) remove this slot's entry."""
        g, d, csr, spec = k.g, k.d, k.csr, k.spec
        op, inv = d.cur_op, d.cur_inv_op
        asid = d.cur_asid[:g.asid_bits]
        index = csr["TLBIDX"].Index
        # D16: an STLB Index selects its set, an MTLB Index the whole MTLB
        idx_in_stlb = index < g.stlb_entries
        idx_set = (index % g.stlb_sets) if g.stlb_sets > 1 else 0
        same_place = Mux(idx_in_stlb, self.in_stlb & (self.set == idx_set),
                         ~self.in_stlb & (index < g.total_entries))
        mine = ~self.g & (self.asid == csr["ASID"].ASID)
        clr = (op == InsnOp.TLBCLR) & same_place & mine
        flush = (op == InsnOp.TLBFLUSH) & same_place
        ps = self.ps(k)
        page = ((((d.cur_va[13:g.valen] ^ self.vppn) & spec.vppn_mask(ps)) == 0) &
                (~self.in_stlb | (spec.set_of(d.cur_va, csr["STLBPS"].PS) == self.set)))
        asid_eq = self.asid == asid
        inv_hit = Mux(inv <= 1, 1,
                  Mux(inv == 2, self.g,
                  Mux(inv == 3, ~self.g,
                  Mux(inv == 4, ~self.g & asid_eq,
                  Mux(inv == 5, ~self.g & asid_eq & page,
                  Mux(inv == 6, (self.g | asid_eq) & page, 0))))))
        return clr | flush | ((op == InsnOp.INVTLB) & inv_hit)
