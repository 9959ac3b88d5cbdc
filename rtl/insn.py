"""The instruction unit: TLBSRCH, TLBRD, TLBWR, TLBFILL, TLBCLR, TLBFLUSH, INVTLB, ERTN."""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from sw_model.geometry import Geometry

from .csrfile import insn_csr_signature, regs_signature
from .layouts import (InsnOp, csr_layout, half_layout, mtlb_entry_layout, stlb_entry_layout,
                      tag_layout)
from .match import Match
from .pagesize import PageSize
from .storage import (mtlb_read_signature, mtlb_write_signature, stlb_e_signature,
                      stlb_read_signature, stlb_write_signature)
from .util import bit_at, first_one, priority

__all__ = ["InsnSignature", "InstructionUnit"]


class InsnSignature(wiring.Signature):
    """The instruction port, as seen from the unit: a request (``valid``, ``ready``, ``op``
    and its operands ``inv_op``, ``asid``, ``va``, held until ``done``) and its response
    (``done`` in the last cycle, with ``illegal`` and, for TLBFILL, ``slot``)."""

    def __init__(self, geom: Geometry):
        super().__init__({
            "valid": In(1), "ready": Out(1), "op": In(InsnOp), "inv_op": In(5),
            "asid": In(10), "va": In(geom.grlen),
            "done": Out(1), "illegal": Out(1), "slot": Out(geom.index_bits),
        })


def _half_from_elo(geom, elo):
    """A TLBELO image (CSR view) as an entry half."""
    half = Signal(half_layout(geom))
    fields = dict(v=elo.V, d=elo.D, plv=elo.PLV, mat=elo.MAT, ppn=elo.PPN)
    if not geom.is_la32:
        fields.update(nr=elo.NR, nx=elo.NX, rplv=elo.RPLV)
    return half, [getattr(half, k).eq(v) for k, v in fields.items()]


def _elo_from_half(geom, elo, half, g):
    """Statements writing an entry half (and the entry's G) into a TLBELO view."""
    stmts = [elo.as_value().eq(0), elo.V.eq(half.v), elo.D.eq(half.d), elo.PLV.eq(half.plv),
             elo.MAT.eq(half.mat), elo.G.eq(g), elo.PPN.eq(half.ppn)]
    if not geom.is_la32:
        stmts += [elo.NR.eq(half.nr), elo.NX.eq(half.nx), elo.RPLV.eq(half.rplv)]
    return stmts


class InstructionUnit(wiring.Component):
    """The TLB instructions, one at a time, as an FSM. Its cycles, from accepting an
    instruction to the edge after ``done`` (``sets``: the STLB's sets), are :data:`CYCLES`.

    Members
    -------
    insn : Out(InsnSignature)
        The instruction port of :class:`~rtl.unit.TLBUnit`.
    csr : In(regs_signature); csr_write : Out(insn_csr_signature)
        The CSRs it reads, and its CSR writes (ERTN, TLBSRCH, TLBRD).
    stlb, stlb_e, stlb_write, stlb_occupied, stlb_care : the STLB (with an STLB)
        One row read, one E read (of the set whose rows are out), the write port, the sets
        holding an entry, the compare bits.
    fill_set : Out(set bits)
        The STLB set a TLBFILL would write (for :class:`~rtl.replacement.Replacement`).
    mtlb_tags, mtlb_cares, mtlb_e, mtlb, mtlb_write : the MTLB
        Its registers, a data read (TLBRD), the write port.
    stlb_slot, stlb_full, mtlb_slot, mtlb_full : In; stlb_step, mtlb_step : Out
        The replacement's choice, and its steps.
    multi : Out(1)
        TLBSRCH found more than one entry (D7).
    """

    #: cycles from accepting an instruction to its completion (``done``); ``sets`` stands
    #: for the number of STLB sets
    CYCLES = {
        "TLBWR": 1, "TLBFILL": 2, "TLBSRCH": 3, "TLBRD": 2, "ERTN": 1, "TLBFLUSH": 1,
        "TLBCLR (STLB set)": 2, "TLBCLR (MTLB)": 1, "INVTLB 0/1": 1, "INVTLB 5/6": 2,
        "INVTLB 2-4": "1 + the STLB sets holding a valid entry, or 2 if none does "
                      "(at most sets + 1)",
    }

    def __init__(self, geom: Geometry):
        self.geom = geom
        M = geom.mtlb_entries
        members = {
            "insn": Out(InsnSignature(geom)),
            "csr": In(regs_signature(geom)), "csr_write": Out(insn_csr_signature(geom)),
            "mtlb_tags": In(data.ArrayLayout(tag_layout(geom), M)),
            "mtlb_cares": In(data.ArrayLayout(geom.vppn_bits, M)),
            "mtlb_e": In(M),
            "mtlb": Out(mtlb_read_signature(geom)), "mtlb_write": Out(mtlb_write_signature(geom)),
            "mtlb_slot": In(range(max(2, M))), "mtlb_full": In(1), "mtlb_step": Out(1),
            "multi": Out(1),
        }
        if geom.has_stlb:
            members.update(
                stlb=Out(stlb_read_signature(geom)), stlb_e=Out(stlb_e_signature(geom)),
                stlb_write=Out(stlb_write_signature(geom)), stlb_occupied=In(geom.stlb_sets),
                stlb_care=In(geom.vppn_bits), fill_set=Out(max(1, geom.set_bits)),
                stlb_slot=In(range(max(2, geom.stlb_ways))), stlb_full=In(1),
                stlb_step=Out(1))
        super().__init__(members)

    def elaborate(self, platform):
        g = self.geom
        W, S, M = g.stlb_ways, g.stlb_sets, g.mtlb_entries
        set_bits = g.set_bits
        m = Module()
        csr, req = self.csr, self.insn
        istlbr = csr.TLBRERA.IsTLBR
        cur_asid = csr.ASID.ASID
        stlbps = csr.STLBPS.PS
        mtlb_tags = [self.mtlb_tags[i] for i in range(M)]

        # operands, latched when an instruction is accepted (the match key below too)
        op = Signal(InsnOp, name="op_r")
        inv_op = Signal(5, name="inv_op_r")
        accept = req.valid & req.ready
        with m.If(accept):
            m.d.sync += [op.eq(req.op), inv_op.eq(req.inv_op)]

        # ---- what TLBWR / TLBFILL write (D3, D4, D5) ---------------------------------------
        src_vppn = Mux(istlbr, csr.TLBREHI.VPPN, csr.TLBEHI.VPPN)
        src_ps = Signal(6, name="src_ps")
        m.d.comb += src_ps.eq(Mux(istlbr, csr.TLBREHI.PS, csr.TLBIDX.PS))
        elo0 = Mux(istlbr, csr.TLBRELO0.as_value(), csr.TLBELO0.as_value())
        elo1 = Mux(istlbr, csr.TLBRELO1.as_value(), csr.TLBELO1.as_value())
        elo0_v = csr_layout(g, "TLBELO0")(Signal(g.grlen, name="src_elo0"))
        elo1_v = csr_layout(g, "TLBELO1")(Signal(g.grlen, name="src_elo1"))
        m.d.comb += [elo0_v.as_value().eq(elo0), elo1_v.as_value().eq(elo1)]
        # D4: TLBFILL under tlbfill_ne "ignore" writes E = 1 whatever NE holds (TLBFILL writes
        # from the FILL state, TLBWR from IDLE)
        src_e = Signal(name="src_e")
        m.d.comb += src_e.eq(istlbr | ~csr.TLBIDX.NE)
        half0, stmts0 = _half_from_elo(g, elo0_v)
        half1, stmts1 = _half_from_elo(g, elo1_v)
        m.d.comb += stmts0 + stmts1
        new_entry = Signal(mtlb_entry_layout(g), name="new_entry")
        m.d.comb += [new_entry.tag.asid.eq(cur_asid), new_entry.tag.g.eq(elo0_v.G & elo1_v.G),
                     new_entry.tag.vppn.eq(src_vppn), new_entry.ps.eq(src_ps),
                     new_entry.lo0.eq(half0), new_entry.lo1.eq(half1)]
        ps_listed = Cat(src_ps == p for p in g.page_shifts).any()
        new_mask = m.submodules.new_mask = PageSize(g, compare=True)
        m.d.comb += new_mask.ps.eq(src_ps)

        # ---- TLBIDX.Index decoded (D2, D18) -----------------------------------------------
        index = csr.TLBIDX.Index
        in_stlb = Signal(name="index_in_stlb")
        in_mtlb = Signal(name="index_in_mtlb")
        if W:
            m.d.comb += in_stlb.eq(index < g.stlb_entries)
        m.d.comb += in_mtlb.eq(~in_stlb & (index < g.total_entries))
        idx_set = index[:set_bits] if set_bits else Const(0, 1)
        idx_way = Signal(range(max(2, W)), name="idx_way")
        m.d.comb += idx_way.eq(index >> set_bits)
        idx_m = Signal(range(max(2, M)), name="idx_mtlb")
        m.d.comb += [idx_m.eq(index - g.stlb_entries), self.mtlb.addr.eq(idx_m)]
        rd_data = self.mtlb.data                          # TLBRD's read of the MTLB data

        # ---- TLBFILL placement (D9, D10): the set here, the slot from the replacement -----
        to_stlb = Signal(name="fill_to_stlb")
        if W:
            m.d.comb += to_stlb.eq(src_ps == stlbps)
        # comb-heavy decoding in a module of its own (cheaper to simulate)
        m.submodules.decode = dm = Module()

        def set_of(name, vpn):
            sets = dm.submodules[name] = PageSize(g, set=True)
            dm.d.comb += [sets.ps.eq(stlbps), sets.vpn.eq(vpn)]
            return sets.set

        if W:
            fill_set = set_of("fill_set", src_vppn)
            m.d.comb += self.fill_set.eq(fill_set)

        # ---- the instruction match (TLBSRCH and INVTLB op 5/6) ----------------------------
        # its key is chosen when the instruction is accepted and held in a register, so the
        # match starts from flip-flops, not from the operation decode
        key_vpn = Signal(g.vppn_bits, name="key_vpn")
        key_asid = Signal(g.asid_bits, name="key_asid")
        with m.If(accept):
            is_inv = req.op == InsnOp.INVTLB
            m.d.sync += [key_vpn.eq(Mux(is_inv, req.va[13:g.valen], src_vppn)),
                         key_asid.eq(Mux(is_inv, req.asid[:g.asid_bits], cur_asid))]
        rd_set = Signal(max(1, set_bits), name="rd_set")        # set read in this cycle
        cur_set = Signal(max(1, set_bits), name="cur_set")      # set whose rows are out
        m.d.sync += cur_set.eq(rd_set)
        if W:
            m.d.comb += [self.stlb.addr.eq(rd_set), self.stlb_e.addr.eq(cur_set)]
            rows = [self.stlb.rows[w] for w in range(W)]
            cur_set_e = self.stlb_e.e
            s = dm.submodules.stlb_match = Match(g, W)
            for w in range(W):
                dm.d.comb += [s.tags[w].eq(rows[w].tag), s.cares[w].eq(self.stlb_care)]
            dm.d.comb += [s.e.eq(cur_set_e), s.key_vpn.eq(key_vpn), s.key_asid.eq(key_asid)]
        mm = dm.submodules.mtlb_match = Match(g, M)
        for i in range(M):
            dm.d.comb += [mm.tags[i].eq(mtlb_tags[i]), mm.cares[i].eq(self.mtlb_cares[i])]
        dm.d.comb += [mm.e.eq(self.mtlb_e), mm.key_vpn.eq(key_vpn), mm.key_asid.eq(key_asid)]
        # INVTLB op 2-4 visit only the STLB sets that hold a valid entry
        if W:
            occupied = self.stlb_occupied
            sweep_todo = Signal(S, name="sweep_todo")     # occupied sets not yet read
            sweep_rows = Signal(name="sweep_rows")        # cur_set is one of them
            sweep_from = Signal(S, name="sweep_from")
            sweep_set = first_one(dm, sweep_from, "sweep_set")
            key_set_src = set_of("srch_set", src_vppn)
            key_set_va = set_of("inv_set", req.va[13:g.valen])

        # ---- what an instruction changes, gathered here and applied by the banks ---------
        # one STLB set changes per cycle: written (TLBWR, TLBFILL) or cleared, in some ways
        stlb_we = Signal(max(1, W), name="stlb_we")
        stlb_waddr = Signal(max(1, set_bits), name="stlb_waddr")
        mtlb_write = Signal(name="mtlb_write")
        mtlb_waddr = Signal(range(max(2, M)), name="mtlb_waddr")
        mtlb_clear = Signal(M, name="mtlb_clear")
        step_policy_stlb = Signal()
        step_policy_mtlb = Signal()
        clear_way = Signal(max(1, W), name="clear_way")
        clear_all = Signal(name="clear_all_stlb")

        def clear_stlb_set(set_, cond_per_way):
            m.d.comb += [stlb_waddr.eq(set_), clear_way.eq(Cat(cond_per_way))]

        def invtlb_cond(opv, g_bit, asid_eq):
            """D15: the G/ASID condition of INVTLB ops 0..4 for one entry: its G bit, and
            whether its ASID is the instruction's (from the instruction match, whose key
            holds that ASID during INVTLB)."""
            return Mux(opv < 2, 1,
                       Mux(opv == 2, g_bit, Mux(opv == 3, ~g_bit, ~g_bit & asid_eq)))

        # The MTLB entries TLBCLR and INVTLB op 2-4 clear, from registers only (the current
        # ASID; the latched op and ASID): logic per entry that no operand input reaches, so a
        # simulator does not evaluate it again for every change of an input.
        clr_mtlb = Signal(M, name="tlbclr_mtlb")
        inv_mtlb = Signal(M, name="invtlb_mtlb")
        m.d.comb += [clr_mtlb.eq(Cat(~t.g & (t.asid == cur_asid) for t in mtlb_tags)),
                     inv_mtlb.eq(Cat(invtlb_cond(inv_op, t.g, mm.asid_eq[i])
                                     for i, t in enumerate(mtlb_tags)))]

        # TLBSRCH's hit vectors, between its compare and its lowest hit
        srch_m_hits = Signal(M, name="srch_mtlb_hits")
        srch_s_hits = Signal(max(1, W), name="srch_stlb_hits")
        srch_set = Signal(max(1, set_bits), name="srch_set_r")

        done = req.done
        cw = self.csr_write
        with m.FSM(name="fsm") as fsm:
            with m.State("IDLE"):
                m.d.comb += req.ready.eq(1)
                with m.If(req.valid):
                    with m.Switch(req.op):
                        with m.Case(InsnOp.TLBWR):
                            m.d.comb += done.eq(1)
                            # in_stlb and in_mtlb exclude each other; an MTLB-only TLB has
                            # no STLB branch at all (no constant-false case in the Verilog)
                            if W:
                                with m.If(in_stlb):
                                    m.d.comb += [stlb_we.eq(Const(1, W) << idx_way),
                                                 stlb_waddr.eq(idx_set)]
                            with m.If(in_mtlb):
                                with m.If(ps_listed):
                                    m.d.comb += [mtlb_write.eq(1), mtlb_waddr.eq(idx_m)]
                                with m.Else():
                                    m.d.comb += req.illegal.eq(1)
                        with m.Case(InsnOp.TLBFILL):
                            m.next = "FILL"
                        with m.Case(InsnOp.ERTN):
                            m.d.comb += [done.eq(1), cw.ertn.eq(1)]
                        with m.Case(InsnOp.TLBFLUSH):
                            m.d.comb += done.eq(1)
                            if W:
                                with m.If(in_stlb):
                                    clear_stlb_set(idx_set, [Const(1)] * W)
                            with m.If(in_mtlb):
                                m.d.comb += mtlb_clear.eq(-1)
                        with m.Case(InsnOp.TLBCLR):
                            if W:
                                with m.If(in_stlb):
                                    m.d.comb += rd_set.eq(idx_set)
                                    m.next = "CLR"
                            with m.If(~in_stlb):
                                m.d.comb += done.eq(1)
                            with m.If(in_mtlb):
                                m.d.comb += mtlb_clear.eq(clr_mtlb)
                        with m.Case(InsnOp.TLBSRCH):
                            if W:
                                m.d.comb += rd_set.eq(key_set_src)
                            m.next = "SRCH"
                        with m.Case(InsnOp.TLBRD):
                            m.d.comb += rd_set.eq(idx_set)
                            m.next = "RD"
                        with m.Case(InsnOp.INVTLB):
                            with m.If(req.inv_op > 6):
                                m.d.comb += [done.eq(1), req.illegal.eq(1)]
                            with m.Elif(req.inv_op >= 5):
                                if W:
                                    m.d.comb += rd_set.eq(key_set_va)
                                m.next = "PAGE"
                            with m.Elif(req.inv_op < 2):
                                m.d.comb += [done.eq(1), mtlb_clear.eq(-1), clear_all.eq(1)]
                            with m.Else():
                                # the MTLB is cleared in the last SWEEP cycle, from the
                                # latched op and ASID; read the first occupied set now
                                if W:
                                    m.d.comb += rd_set.eq(sweep_set)
                                    m.d.sync += [sweep_todo.eq(occupied),
                                                 sweep_rows.eq(occupied.any())]
                                    m.d.sync += sweep_todo.bit_select(sweep_set, 1).eq(0)
                                m.next = "SWEEP"

            with m.State("FILL"):
                # the slot was found in the accept cycle (the replacement's, registered)
                m.d.comb += done.eq(1)
                if g.tlbfill_ne == "ignore":
                    m.d.comb += src_e.eq(1)
                with m.If(~ps_listed):
                    m.d.comb += req.illegal.eq(1)
                with m.Elif(to_stlb):
                    if W:
                        m.d.comb += [stlb_we.eq(Const(1, W) << self.stlb_slot),
                                     stlb_waddr.eq(fill_set),
                                     step_policy_stlb.eq(self.stlb_full),
                                     req.slot.eq(Cat(fill_set[:set_bits], self.stlb_slot))]
                with m.Else():
                    m.d.comb += [mtlb_write.eq(1), mtlb_waddr.eq(self.mtlb_slot),
                                 step_policy_mtlb.eq(self.mtlb_full),
                                 req.slot.eq(g.stlb_entries + self.mtlb_slot)]
                m.next = "IDLE"

            with m.State("SRCH"):
                # compare; the hit vectors go to registers, the lowest hit is taken next cycle
                m.d.sync += [srch_m_hits.eq(mm.hits), srch_set.eq(cur_set)]
                if W:
                    m.d.sync += srch_s_hits.eq(s.hits)
                m.next = "SRCH_HIT"

            with m.State("SRCH_HIT"):
                m.d.comb += done.eq(1)
                _oh, m_first, m_hit, m_multi = priority(m, srch_m_hits, "srch_mtlb_first")
                if W:
                    _oh, s_first, s_hit, s_multi = priority(m, srch_s_hits, "srch_stlb_first")
                    slot = Mux(s_hit, Cat(srch_set[:set_bits], s_first), g.stlb_entries + m_first)
                    multi = s_multi | m_multi | (s_hit & m_hit)
                else:
                    s_hit, slot, multi = Const(0), g.stlb_entries + m_first, m_multi
                m.d.comb += [cw.srch.eq(1), cw.srch_found.eq(s_hit | m_hit),
                             cw.srch_index.eq(slot), self.multi.eq(multi)]
                m.next = "IDLE"

            with m.State("RD"):
                m.d.comb += done.eq(1)
                entry = Signal(mtlb_entry_layout(g), name="rd_entry")
                present = Signal(name="rd_present")
                m_sel = Signal(mtlb_entry_layout(g), name="rd_mtlb_entry")
                m.d.comb += [m_sel.tag.eq(Array(t.as_value() for t in mtlb_tags)[idx_m]),
                             m_sel.ps.eq(rd_data.ps), m_sel.lo0.eq(rd_data.lo0),
                             m_sel.lo1.eq(rd_data.lo1)]
                m_e = bit_at(self.mtlb_e, idx_m)
                if W:
                    row = stlb_entry_layout(g)(Array(r.as_value() for r in rows)[idx_way])
                    s_e = bit_at(cur_set_e, idx_way)
                    with m.If(in_stlb):
                        m.d.comb += [entry.tag.eq(row.tag), entry.lo0.eq(row.lo0),
                                     entry.lo1.eq(row.lo1), entry.ps.eq(stlbps),
                                     present.eq(s_e)]
                    with m.Else():
                        m.d.comb += [entry.eq(m_sel), present.eq(m_e & in_mtlb)]
                else:
                    m.d.comb += [entry.eq(m_sel), present.eq(m_e & in_mtlb)]
                m.d.comb += [cw.rd.eq(1), cw.rd_present.eq(present),
                             cw.rd_vppn.eq(entry.tag.vppn), cw.rd_ps.eq(entry.ps),
                             cw.rd_asid.eq(entry.tag.asid)]
                m.d.comb += _elo_from_half(g, cw.rd_elo0, entry.lo0, entry.tag.g)
                m.d.comb += _elo_from_half(g, cw.rd_elo1, entry.lo1, entry.tag.g)
                m.next = "IDLE"

            with m.State("CLR"):
                m.d.comb += done.eq(1)
                if W:
                    clear_stlb_set(cur_set, [~r.tag.g & (r.tag.asid == cur_asid)
                                             for r in rows])
                m.next = "IDLE"

            with m.State("PAGE"):
                m.d.comb += done.eq(1)
                op5 = inv_op == 5
                m.d.comb += mtlb_clear.eq(mm.hits & ~Mux(op5, Cat(t.g for t in mtlb_tags), 0))
                if W:
                    clear_stlb_set(cur_set, [s.hits[w] & ~(op5 & rows[w].tag.g)
                                             for w in range(W)])
                m.next = "IDLE"

            with m.State("SWEEP"):
                # one occupied set per cycle: the rows of cur_set are out (if sweep_rows), the
                # next occupied set is being read; sets with no valid entry are skipped
                last = Const(1)
                if W:
                    with m.If(sweep_rows):
                        clear_stlb_set(cur_set, [invtlb_cond(inv_op, r.tag.g, s.asid_eq[w])
                                                 for w, r in enumerate(rows)])
                    m.d.comb += rd_set.eq(sweep_set)
                    m.d.sync += [sweep_todo.bit_select(sweep_set, 1).eq(0),
                                 sweep_rows.eq(sweep_todo.any())]
                    last = ~sweep_todo.any()
                with m.If(last):
                    m.d.comb += [done.eq(1), mtlb_clear.eq(inv_mtlb)]
                    m.next = "IDLE"

        if W:
            # the search for the next set runs on the occupied sets outside SWEEP, whatever
            # the instruction: chosen by the state alone, it does not wait for the decode of
            # the incoming instruction (which made it la464's longest path)
            m.d.comb += sweep_from.eq(Mux(fsm.ongoing("SWEEP"), sweep_todo, occupied))
            sw = self.stlb_write
            m.d.comb += [sw.we.eq(stlb_we), sw.addr.eq(stlb_waddr), sw.e.eq(src_e),
                         sw.clear.eq(clear_way), sw.clear_all.eq(clear_all),
                         sw.data.tag.eq(new_entry.tag), sw.data.lo0.eq(new_entry.lo0),
                         sw.data.lo1.eq(new_entry.lo1), self.stlb_step.eq(step_policy_stlb)]
        mw = self.mtlb_write
        m.d.comb += [mw.en.eq(mtlb_write), mw.addr.eq(mtlb_waddr), mw.entry.eq(new_entry),
                     mw.mask.eq(new_mask.compare), mw.e.eq(src_e), mw.clear.eq(mtlb_clear),
                     self.mtlb_step.eq(step_policy_mtlb)]
        return m
