"""The instruction unit: TLBSRCH, TLBRD, TLBWR, TLBFILL, TLBCLR, TLBFLUSH, INVTLB, ERTN."""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from loongtlb.sw_model.geometry import Geometry

from .csrfile import insn_csr_signature, read_result_signature, regs_signature, \
    search_result_signature
from .layouts import (InsnOp, csr_layout, half_layout, mask_groups, mtlb_data_layout,
                      mtlb_entry_layout, stlb_entry_layout, tag_layout)
from .match import Match
from .pagesize import PageSize
from .replacement import victim_signature
from .storage import (mtlb_read_signature, mtlb_regs_signature, mtlb_tag_read_signature,
                      mtlb_write_signature, stlb_read_signature, stlb_write_signature)
from .util import bit_at, lowest_one_wide, onehot_index, priority, wires

__all__ = ["InsnSignature", "InstructionUnit", "IndexDecode", "index_signature"]


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


class EntrySource(wiring.Component):
    """What TLBWR and TLBFILL write, from the CSRs (D3, D4, D5): in the refill context
    (TLBRERA.IsTLBR) TLBREHI and TLBRELO0/1, else TLBEHI, TLBIDX.PS and TLBELO0/1; the
    current ASID; G = G0 & G1. Combinational: 0 cycles.

    Members
    -------
    csr : In(regs_signature)
    entry : Out(mtlb_entry_layout)
        The entry (an STLB write takes its tag and halves).
    fill : In(1)
        The write is a TLBFILL's.
    e : Out(1)
        Its E bit (D4): 1 in the refill context, else NOT TLBIDX.NE; 1 for a TLBFILL
        under ``tlbfill_ne: ignore``.
    to_stlb : Out(1)
        Its PS is STLBPS: a TLBFILL writes it into the STLB (D9).
    compare : Out(mask groups)
        Its compare mask (from its PS).
    ps_listed : Out(1)
        Its PS is one of the geometry's (D19).
    """

    LATENCY = {"every output": 0}

    def __init__(self, geom: Geometry):
        self.geom = geom
        super().__init__({
            "csr": In(regs_signature(geom)), "fill": In(1),
            "entry": Out(mtlb_entry_layout(geom)), "e": Out(1), "to_stlb": Out(1),
            "compare": Out(max(1, len(mask_groups(geom)))), "ps_listed": Out(1),
        })

    def elaborate(self, platform):
        g = self.geom
        m = Module()
        csr = self.csr
        istlbr = csr.TLBRERA.IsTLBR
        src_ps = Signal(6, name="src_ps")
        m.d.comb += src_ps.eq(Mux(istlbr, csr.TLBREHI.PS, csr.TLBIDX.PS))
        elo0 = Mux(istlbr, csr.TLBRELO0.as_value(), csr.TLBELO0.as_value())
        elo1 = Mux(istlbr, csr.TLBRELO1.as_value(), csr.TLBELO1.as_value())
        elo0_v = csr_layout(g, "TLBELO0")(Signal(g.grlen, name="src_elo0"))
        elo1_v = csr_layout(g, "TLBELO1")(Signal(g.grlen, name="src_elo1"))
        m.d.comb += [elo0_v.as_value().eq(elo0), elo1_v.as_value().eq(elo1)]
        half0, stmts0 = _half_from_elo(g, elo0_v)
        half1, stmts1 = _half_from_elo(g, elo1_v)
        m.d.comb += stmts0 + stmts1
        entry = self.entry
        m.d.comb += [entry.tag.asid.eq(csr.ASID.ASID), entry.tag.g.eq(elo0_v.G & elo1_v.G),
                     entry.tag.vppn.eq(Mux(istlbr, csr.TLBREHI.VPPN, csr.TLBEHI.VPPN)),
                     entry.ps.eq(src_ps), entry.lo0.eq(half0), entry.lo1.eq(half1),
                     self.ps_listed.eq(Cat(src_ps == p for p in g.page_shifts).any())]
        e = istlbr | ~csr.TLBIDX.NE
        if g.tlbfill_ne == "ignore":
            e = e | self.fill
        m.d.comb += self.e.eq(e)
        if g.has_stlb:
            m.d.comb += self.to_stlb.eq(src_ps == csr.STLBPS.PS)
        sizes = m.submodules.sizes = PageSize(g, compare=True)
        m.d.comb += [sizes.ps.eq(src_ps), self.compare.eq(sizes.compare)]
        return m


def index_signature(geom: Geometry) -> wiring.Signature:
    """TLBIDX.Index decoded (D2, D18): whether it names an STLB slot (``in_stlb``) or an
    MTLB entry (``in_mtlb``; neither from the TLB's size on), the STLB ``set`` and ``way``
    (Index = way x sets + set), the MTLB ``entry`` (Index - STLB entries)."""
    return wiring.Signature({
        "in_stlb": Out(1), "in_mtlb": Out(1), "set": Out(max(1, geom.set_bits)),
        "way": Out(range(max(2, geom.stlb_ways))), "entry": Out(range(max(2, geom.mtlb_entries))),
    })


class IndexDecode(wiring.Component):
    """TLBIDX.Index (``index``) decoded (``decoded``). Combinational: 0 cycles."""

    LATENCY = {"every output": 0}

    def __init__(self, geom: Geometry):
        self.geom = geom
        super().__init__({"index": In(geom.index_bits), "decoded": Out(index_signature(geom))})

    def elaborate(self, platform):
        g = self.geom
        m = Module()
        ix, out = self.index, self.decoded
        if g.has_stlb:
            m.d.comb += [out.in_stlb.eq(ix < g.stlb_entries), out.way.eq(ix >> g.set_bits)]
            if g.set_bits:
                m.d.comb += out.set.eq(ix[:g.set_bits])
        m.d.comb += [out.in_mtlb.eq(~out.in_stlb & (ix < g.total_entries)),
                     out.entry.eq(ix - g.stlb_entries)]
        return m


class InstructionMatch(wiring.Component):
    """The instruction unit's match and the sets it reads. Its key, latched when an
    instruction is accepted (so that the match starts from flip-flops): INVTLB's VA and ASID
    operands, else TLBEHI's (or TLBREHI's) VPPN and the current ASID. It matches the STLB
    set whose rows are out and every MTLB entry (TLBSRCH, INVTLB op 5/6, and INVTLB op 2-4's
    ASID test); gives the STLB sets TLBFILL, TLBSRCH and INVTLB op 5/6 select (D1), the next
    MTLB entries TLBCLR and INVTLB op 2-4 clear (D15, D16). Combinational but for the key: 0 cycles.

    Members
    -------
    accept, op, va, asid : In
        The instruction being accepted and its operands.
    src_vppn, cur_asid, stlbps, inv_op : In
        The VPPN TLBWR/TLBFILL write, ASID.ASID, STLBPS, the latched INVTLB op.
    stlb_tags, stlb_care : In (with an STLB)
        The tags of the set whose rows are out, the STLB's compare bits.
    mtlb_regs : Out(mtlb_regs_signature)
    stlb_hits, stlb_asid_eq, mtlb_hits : Out
        ``stlb_hits`` compare the tags alone: the set's E bits, read with its rows, come
        registered a cycle after them (``set_e``) and gate the hits where an instruction
        needs it (TLBSRCH, in :class:`SearchResult`); a clear keeps E = 0 as it was.
    src_set, inv_set : Out (with an STLB)
        The STLB set of the VPPN TLBWR/TLBFILL write (TLBFILL's and TLBSRCH's set), of
        INVTLB's VA (op 5/6).
    clr_mtlb, inv_mtlb : Out
    """

    LATENCY = {"every output": 0, "key": 1}

    def __init__(self, geom: Geometry):
        self.geom = geom
        W, M = geom.stlb_ways, geom.mtlb_entries
        sets = max(1, geom.set_bits)
        members = {
            "accept": In(1), "op": In(InsnOp), "va": In(geom.grlen), "asid": In(10),
            "src_vppn": In(geom.vppn_bits), "cur_asid": In(geom.asid_bits), "stlbps": In(6),
            "inv_op": In(5), "mtlb_regs": Out(mtlb_regs_signature(geom)),
            "mtlb_hits": Out(M), "clr_mtlb": Out(M), "inv_mtlb": Out(M),
        }
        if geom.has_stlb:
            members.update(
                stlb_tags=In(data.ArrayLayout(tag_layout(geom), W)),
                stlb_care=In(geom.vppn_bits),
                stlb_hits=Out(W), stlb_asid_eq=Out(W), src_set=Out(sets), inv_set=Out(sets))
        super().__init__(members)

    def elaborate(self, platform):
        g = self.geom
        W, M = g.stlb_ways, g.mtlb_entries
        m = Module()
        key_vpn = Signal(g.vppn_bits, name="key_vpn")
        key_asid = Signal(g.asid_bits, name="key_asid")
        with m.If(self.accept):
            is_inv = self.op == InsnOp.INVTLB
            m.d.sync += [key_vpn.eq(Mux(is_inv, self.va[13:g.valen], self.src_vppn)),
                         key_asid.eq(Mux(is_inv, self.asid[:g.asid_bits], self.cur_asid))]
        if W:
            for name, vpn in (("src_set", self.src_vppn), ("inv_set", self.va[13:g.valen])):
                sets = m.submodules[name] = PageSize(g, set=True)
                m.d.comb += [sets.ps.eq(self.stlbps), sets.vpn.eq(vpn),
                             getattr(self, name).eq(sets.set)]
            s = m.submodules.stlb_match = Match(g, W)
            for w in range(W):
                m.d.comb += [s.tags[w].eq(self.stlb_tags[w]), s.cares[w].eq(self.stlb_care)]
            m.d.comb += [s.e.eq(-1), s.key_vpn.eq(key_vpn), s.key_asid.eq(key_asid),
                         self.stlb_hits.eq(s.hits), self.stlb_asid_eq.eq(s.asid_eq)]
        mm = m.submodules.mtlb_match = Match(g, M)
        regs = self.mtlb_regs
        tags = [regs.tags[i] for i in range(M)]
        for i in range(M):
            m.d.comb += [mm.tags[i].eq(tags[i]), mm.cares[i].eq(regs.cares[i])]
        m.d.comb += [mm.e.eq(regs.e), mm.key_vpn.eq(key_vpn), mm.key_asid.eq(key_asid),
                     self.mtlb_hits.eq(mm.hits)]
        # From registers only (the current ASID; the latched op and ASID): logic per entry
        # that no operand input reaches, so a simulator does not evaluate it again for every
        # change of an input.
        m.d.comb += [self.clr_mtlb.eq(Cat(~t.g & (t.asid == self.cur_asid) for t in tags)),
                     self.inv_mtlb.eq(Cat(_invtlb_cond(self.inv_op, t.g, mm.asid_eq[i])
                                          for i, t in enumerate(tags)))]
        return m


class EntryRead(wiring.Component):
    """TLBRD's readout (D8, D18): the entry at TLBIDX.Index, from the STLB row read a cycle
    before (the set of the Index) and that set's E bits (read with the rows a cycle before
    that, registered) or from the MTLB, whether it holds one, and what TLBRD writes of it
    (G into both TLBELO words). Combinational: 0 cycles.

    Members
    -------
    index : In(index_signature)
        TLBIDX.Index decoded.
    stlb_rows, stlb_e, stlbps : In (with an STLB)
        The rows and E bits of the Index's set, STLBPS (an STLB entry's PS).
    mtlb_e, mtlb_tag, mtlb_data : In
        The MTLB's E bits; the tag and the data of ``entry``.
    result : Out(read_result_signature)
    """

    LATENCY = {"every output": 0}

    def __init__(self, geom: Geometry):
        self.geom = geom
        W = geom.stlb_ways
        members = {
            "index": In(index_signature(geom)),
            "mtlb_e": In(geom.mtlb_entries), "mtlb_tag": In(tag_layout(geom)),
            "mtlb_data": In(mtlb_data_layout(geom)),
            "result": Out(read_result_signature(geom)),
        }
        if W:
            members.update(stlbps=In(6), stlb_e=In(W),
                           stlb_rows=In(data.ArrayLayout(stlb_entry_layout(geom), W)))
        super().__init__(members)

    def elaborate(self, platform):
        g = self.geom
        m = Module()
        ix, res = self.index, self.result
        entry = Signal(mtlb_entry_layout(g), name="entry_read")
        m_sel = Signal(mtlb_entry_layout(g), name="mtlb_entry")
        m.d.comb += [m_sel.tag.eq(self.mtlb_tag),
                     m_sel.ps.eq(self.mtlb_data.ps), m_sel.lo0.eq(self.mtlb_data.lo0),
                     m_sel.lo1.eq(self.mtlb_data.lo1)]
        m_present = bit_at(self.mtlb_e, ix.entry) & ix.in_mtlb
        if g.has_stlb:
            rows = [self.stlb_rows[w] for w in range(g.stlb_ways)]
            row = stlb_entry_layout(g)(Array(r.as_value() for r in rows)[ix.way])
            with m.If(ix.in_stlb):
                m.d.comb += [entry.tag.eq(row.tag), entry.lo0.eq(row.lo0),
                             entry.lo1.eq(row.lo1), entry.ps.eq(self.stlbps),
                             res.present.eq(bit_at(self.stlb_e, ix.way))]
            with m.Else():
                m.d.comb += [entry.eq(m_sel), res.present.eq(m_present)]
        else:
            m.d.comb += [entry.eq(m_sel), res.present.eq(m_present)]
        m.d.comb += [res.vppn.eq(entry.tag.vppn), res.ps.eq(entry.ps),
                     res.asid.eq(entry.tag.asid)]
        m.d.comb += _elo_from_half(g, res.elo0, entry.lo0, entry.tag.g)
        m.d.comb += _elo_from_half(g, res.elo1, entry.lo1, entry.tag.g)
        return m


class SearchResult(wiring.Component):
    """TLBSRCH's result (D6, D7): the hit vectors of its compare and the set compared, kept
    in registers (``capture``), then the lowest hit, the STLB's before the MTLB's, as an
    Index, and whether more than one entry matched. 1 cycle from ``capture``.

    Members
    -------
    capture, stlb_hits, mtlb_hits, set : In
    stlb_e : In
        The E bits of the set compared, a cycle after ``capture`` (``stlb_hits`` compare the
        tags alone).
    result : Out(search_result_signature); multi : Out(1)
    """

    LATENCY = {"result": 1}

    def __init__(self, geom: Geometry):
        self.geom = geom
        members = {"capture": In(1), "mtlb_hits": In(geom.mtlb_entries),
                   "result": Out(search_result_signature(geom)), "multi": Out(1)}
        if geom.has_stlb:
            members.update(stlb_hits=In(geom.stlb_ways), set=In(max(1, geom.set_bits)),
                           stlb_e=In(geom.stlb_ways))
        super().__init__(members)

    def elaborate(self, platform):
        g = self.geom
        m = Module()
        m_hits = Signal(g.mtlb_entries, name="mtlb_hits_r")
        with m.If(self.capture):
            m.d.sync += m_hits.eq(self.mtlb_hits)
        _oh, m_first, m_hit, m_multi = priority(m, m_hits, "mtlb_first")
        if g.has_stlb:
            s_hits = Signal(g.stlb_ways, name="stlb_hits_r")
            set_ = Signal(max(1, g.set_bits), name="set_r")
            with m.If(self.capture):
                m.d.sync += [s_hits.eq(self.stlb_hits), set_.eq(self.set)]
            _oh, s_first, s_hit, s_multi = priority(m, s_hits & self.stlb_e, "stlb_first")
            m.d.comb += [self.result.index.eq(Mux(s_hit, Cat(set_[:g.set_bits], s_first),
                                           g.stlb_entries + m_first)),
                         self.multi.eq(s_multi | m_multi | (s_hit & m_hit)),
                         self.result.found.eq(s_hit | m_hit)]
        else:
            m.d.comb += [self.result.index.eq(g.stlb_entries + m_first), self.multi.eq(m_multi),
                         self.result.found.eq(m_hit)]
        return m


class Sweep(wiring.Component):
    """INVTLB op 2-4's walk over the STLB sets that hold a valid entry, one a cycle (D15),
    in two register stages, so that neither the search over every set nor its encoding is on
    the path to the memories' address: the lowest set still to read, one-hot, then its
    number. While the walk is not ``active`` the first stage follows the occupied sets; in
    the walk's first cycle it holds the lowest of them, and the first set is read in its
    second cycle.

    Members
    -------
    occupied, active : In
        The sets holding an entry; the walk's cycles (by the FSM's state alone).
    set, issue : Out
        The set to read in this cycle, and whether there is one.
    rows : Out
        The rows out now are an occupied set's (read last cycle).
    last : Out
        No set is left to read, in this cycle or later.
    """

    LATENCY = {"first set": 2, "set": 1, "rows": 1}

    def __init__(self, geom: Geometry):
        self.geom = geom
        S = geom.stlb_sets
        super().__init__({"occupied": In(S), "active": In(1),
                          "set": Out(max(1, geom.set_bits)), "issue": Out(1), "rows": Out(1),
                          "last": Out(1)})

    def elaborate(self, platform):
        m = Module()
        S = self.geom.stlb_sets
        todo = Signal(S, name="todo")             # occupied sets not yet chosen
        chosen = Signal(S, name="chosen")         # the next set to read, one-hot
        source = Signal(S, name="sweep_source")
        m.d.comb += source.eq(Mux(self.active, todo, self.occupied))
        lowest = lowest_one_wide(m, source, "sweep_lowest")
        m.d.sync += [chosen.eq(lowest), todo.eq(source & ~lowest),
                     self.issue.eq(self.active & chosen.any()),
                     self.rows.eq(self.active & self.issue)]
        # the chosen set's number, registered: encoded from ``chosen`` a cycle before (in
        # ``sync`` as an expression a simulator would encode all 256 bits at every edge)
        number = Signal.like(self.set, name="chosen_number")
        m.d.comb += number.eq(onehot_index(chosen))
        m.d.sync += self.set.eq(number)
        m.d.comb += self.last.eq(~self.issue & ~(self.active & chosen.any()))
        return m


class InstructionUnit(wiring.Component):
    """The TLB instructions, one at a time, as an FSM. Its cycles, from accepting an
    instruction to the edge after ``done`` (``sets``: the STLB's sets), are :data:`CYCLES`.

    For the clock, what an instruction changes leaves a cycle after it is decided: every
    write to the banks and the CSRs, and ``done`` with ``illegal`` and ``slot``, come from
    registers; that cycle (``done``) is one more in every instruction, and the port is not
    ready in it. The decisions themselves start from registers where they were long paths:
    TLBFILL's set (read at the accept and again in the cycle after, when its E bits are
    registered; the victim is found from them in the next) and INVTLB op 2-4's next set
    (:class:`Sweep`). Whatever writes an STLB set has read it first: the write gives all
    of the set's E bits, changed from those read with its rows (TLBWR reads its set in its
    first cycle for that).

    Members
    -------
    insn : Out(InsnSignature)
        The instruction port of :class:`~rtl.unit.TLBUnit`.
    csr : In(regs_signature); csr_write : Out(insn_csr_signature)
        The CSRs it reads, and its CSR writes (ERTN, TLBSRCH, TLBRD).
    stlb, stlb_write, stlb_occupied, stlb_care : the STLB (with an STLB)
        One set read (rows and E bits), the write port, the sets holding an entry, the
        compare bits.
    set_e : Out(ways)
        The E bits of the set whose rows were out a cycle before: in TLBFILL's FILL state,
        of the set it writes (for :class:`~rtl.replacement.Replacement`).
    mtlb_regs, mtlb, mtlb_tag, mtlb_write : the MTLB
        Its registers, a data read and a tag read (TLBRD), the write port.
    victim : Out(victim_signature)
        The replacement's choice, and its steps.
    multi : Out(1)
        TLBSRCH found more than one entry (D7), in its ``done`` cycle.
    stall : In(1)
        Refuse instructions (a lookup's exception CSR writes are pending).
    busy : Out(1)
        An instruction is part-way: accepted, not past its ``done`` cycle (for a formal
        checker, whose driver knows the same).
    """

    #: cycles from accepting an instruction to its completion (``done``, then the edge that
    #: ends it); ``sets`` stands for the number of STLB sets
    CYCLES = {
        "TLBWR": 3, "TLBFILL": 4, "TLBSRCH": 4, "TLBRD": 4, "ERTN": 2, "TLBFLUSH": 2,
        "TLBCLR (STLB set)": 3, "TLBCLR (MTLB)": 2, "INVTLB 0/1": 2, "INVTLB 5/6": 3,
        "INVTLB (op above 6)": 2,
        "INVTLB 2-4": "4 + the STLB sets holding a valid entry, or 3 if none does "
                      "(at most sets + 4)",
    }
    #: INVTLB op 2-4's cycles beyond the occupied STLB sets (3 when none is)
    SWEEP_CYCLES = 4
    LATENCY = CYCLES

    def __init__(self, geom: Geometry):
        self.geom = geom
        members = {
            "insn": Out(InsnSignature(geom)),
            "csr": In(regs_signature(geom)), "csr_write": Out(insn_csr_signature(geom)),
            "mtlb_regs": Out(mtlb_regs_signature(geom)), "mtlb": Out(mtlb_read_signature(geom)),
            "mtlb_tag": Out(mtlb_tag_read_signature(geom)),
            "mtlb_write": Out(mtlb_write_signature(geom)),
            "victim": Out(victim_signature(geom)), "multi": Out(1), "stall": In(1),
            "busy": Out(1),
        }
        if geom.has_stlb:
            members.update(
                stlb=Out(stlb_read_signature(geom)),
                stlb_write=Out(stlb_write_signature(geom)), stlb_occupied=In(geom.stlb_sets),
                stlb_care=In(geom.vppn_bits), set_e=Out(geom.stlb_ways))
        super().__init__(members)

    def elaborate(self, platform):
        g = self.geom
        m = Module()
        c = self._decode(m)
        with m.FSM(name="fsm") as fsm:
            with m.State("IDLE"):
                self._idle(m, c)
            with m.State("WR"):
                self._write(m, c)
            with m.State("FILL_VICTIM"):
                # the E bits of the set read at the accept are out, registered into
                # ``set_e``; the set is read again, so that it is still ``cur_set`` in FILL,
                # where the replacement finds the victim in them
                m.d.comb += c.rd_set.eq(c.cur_set)
                m.next = "FILL"
            with m.State("FILL"):
                self._fill(m, c)
            with m.State("SRCH"):
                # compare; the hit vectors go to registers, the lowest hit is taken next cycle
                m.d.comb += c.search.capture.eq(1)
                m.next = "SRCH_HIT"
            with m.State("SRCH_HIT"):
                m.d.sync += [c.done.eq(1), c.cw.srch.eq(1), self.multi.eq(c.search.multi)]
                m.next = "IDLE"
            with m.State("RD_E"):
                # the set's rows and E bits are out, the E bits registered into ``set_e``;
                # the set is read again, so that its rows are out with them in RD
                m.d.comb += c.rd_set.eq(c.cur_set)
                m.next = "RD"
            with m.State("RD"):
                m.d.sync += [c.done.eq(1), c.cw.rd.eq(1)]
                m.next = "IDLE"
            with m.State("CLR"):
                m.d.sync += c.done.eq(1)
                if g.has_stlb:
                    c.clear_stlb_set(c.cur_set, [~r.tag.g & (r.tag.asid == c.cur_asid)
                                                 for r in c.rows])
                m.next = "IDLE"
            with m.State("PAGE"):
                m.d.sync += c.done.eq(1)
                op5 = c.inv_op == 5
                m.d.sync += c.mw.clear.eq(c.match.mtlb_hits &
                                            ~Mux(op5, Cat(t.g for t in c.tags), 0))
                if g.has_stlb:
                    c.clear_stlb_set(c.cur_set, [c.match.stlb_hits[w] & ~(op5 & r.tag.g)
                                                 for w, r in enumerate(c.rows)])
                m.next = "IDLE"
            with m.State("SWEEP"):
                self._sweep(m, c)
        self._apply(m, c, fsm)
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") | self.insn.done)
        return m

    def _decode(self, m) -> SimpleNamespace:
        """The operands, the entry TLBWR/TLBFILL write, TLBIDX.Index decoded (D2, D18), the
        instruction match, and the signals the states drive: shared by every state."""
        g = self.geom
        W, M = g.stlb_ways, g.mtlb_entries
        c = SimpleNamespace(req=self.insn, cur_asid=self.csr.ASID.ASID,
                            stlbps=self.csr.STLBPS.PS,
                            tags=[self.mtlb_regs.tags[i] for i in range(M)])
        # what the states decide (done, illegal, slot) they assign in ``sync``: registered on
        # the way out, and 0 in a cycle that decides nothing
        c.done, c.illegal, c.slot = self.insn.done, self.insn.illegal, self.insn.slot
        m.d.sync += [c.done.eq(0), c.illegal.eq(0), c.slot.eq(0)]
        # INVTLB's op, latched when an instruction is accepted (the match key too). Not ready
        # in the done cycle of the last instruction (its effects land at its end). The
        # accept is an expression, not a signal of this module that its own statements read
        # (a simulator would evaluate them all again once it had changed).
        c.inv_op = Signal(5, name="inv_op_r")
        ready = ~self.insn.done & ~self.stall
        m.d.comb += c.req.ready.eq(ready)
        c.accept = c.req.valid & ready
        with m.If(c.accept):
            m.d.sync += c.inv_op.eq(c.req.inv_op)
        # the blocks' inputs are connected in modules of their own (``wires``), so that
        # the states' statements are not evaluated again when only a block's input changed
        c.entry = m.submodules.entry = EntrySource(g)
        wiring.connect(wires(m, "entry"), wiring.flipped(self.csr), c.entry.csr)
        ix = m.submodules.index = IndexDecode(g)
        c.index = ix.decoded
        wires(m, "index").d.comb += [ix.index.eq(self.csr.TLBIDX.Index),
                                     self.mtlb.addr.eq(c.index.entry),
                                     self.mtlb_tag.addr.eq(c.index.entry)]
        self._matches(m, c)
        # what an instruction changes goes to the banks a cycle after it is decided: one
        # STLB set per cycle, written (TLBWR, TLBFILL) or cleared in some ways, with all its
        # E bits (those read with its rows, changed); one MTLB entry written, any cleared
        c.mw = _registered(m, self.mtlb_write)
        if W:
            c.sw = _registered(m, self.stlb_write)

        def clear_stlb_set(set_, cond_per_way):
            m.d.sync += [c.sw.addr.eq(set_), c.sw.e_we.eq(1),
                         c.sw.e.eq(c.row_e & ~Cat(cond_per_way))]

        def write_stlb_way(set_, we):
            """Write the new entry to the ways ``we`` (one) of ``set_``, whose rows are out."""
            m.d.sync += [c.sw.we.eq(we), c.sw.addr.eq(set_), c.sw.e_we.eq(1),
                         c.sw.e.eq((c.row_e & ~we) | Mux(c.entry.e, we, 0))]
        c.clear_stlb_set, c.write_stlb_way = clear_stlb_set, write_stlb_way
        self._results(m, c)
        return c

    def _results(self, m, c) -> None:
        """TLBSRCH's and TLBRD's results, written to the CSRs in their last state."""
        g = self.geom
        c.cw = cw = _registered(m, self.csr_write)
        m.d.sync += self.multi.eq(0)
        c.search = sr = m.submodules.search = SearchResult(g)
        _register(m, cw.srch_result, sr.result)
        rd = m.submodules.read = EntryRead(g)
        _register(m, cw.rd_result, rd.result)
        w = wires(m, "search")
        w.d.comb += sr.mtlb_hits.eq(c.match.mtlb_hits)
        if g.has_stlb:
            w.d.comb += [sr.stlb_hits.eq(c.match.stlb_hits), sr.set.eq(c.cur_set),
                         sr.stlb_e.eq(c.set_e)]
        w = wires(m, "read")
        wiring.connect(w, c.index, rd.index)
        w.d.comb += [rd.mtlb_data.eq(self.mtlb.data), rd.mtlb_tag.eq(self.mtlb_tag.tag),
                     rd.mtlb_e.eq(self.mtlb_regs.e)]
        if g.has_stlb:
            w.d.comb += [rd.stlbps.eq(c.stlbps), rd.stlb_e.eq(c.set_e)]
            w.d.comb += [rd.stlb_rows[i].eq(c.rows[i]) for i in range(g.stlb_ways)]

    def _matches(self, m, c) -> None:
        """The instruction match, the sets it reads, the sets the instructions select."""
        g = self.geom
        W = g.stlb_ways
        c.match = mt = m.submodules.match = InstructionMatch(g)
        w = wires(m, "match")
        w.d.comb += [mt.accept.eq(c.accept), mt.op.eq(c.req.op), mt.va.eq(c.req.va),
                     mt.asid.eq(c.req.asid), mt.src_vppn.eq(c.entry.entry.tag.vppn),
                     mt.cur_asid.eq(c.cur_asid), mt.stlbps.eq(c.stlbps), mt.inv_op.eq(c.inv_op)]
        wiring.connect(w, wiring.flipped(self.mtlb_regs), mt.mtlb_regs)
        # the set read in this cycle (the STLB's read address), the set whose rows are out
        c.rd_set = self.stlb.addr if W else Signal(1, name="rd_set")
        c.cur_set = Signal(max(1, g.set_bits), name="cur_set")
        m.d.sync += c.cur_set.eq(c.rd_set)
        if W:
            c.rows = [self.stlb.rows[i] for i in range(W)]
            # the E bits of the set whose rows are out (``row_e``, read with them), and the
            # same registered: out a cycle after the rows (``set_e``)
            c.row_e, c.set_e = self.stlb.e, self.set_e
            m.d.sync += c.set_e.eq(c.row_e)
            w.d.comb += mt.stlb_care.eq(self.stlb_care)
            w.d.comb += [mt.stlb_tags[i].eq(c.rows[i].tag) for i in range(W)]
            c.key_set_src, c.key_set_va = mt.src_set, mt.inv_set
            c.sweep = m.submodules.sweep = Sweep(g)
            wires(m, "sweep").d.comb += c.sweep.occupied.eq(self.stlb_occupied)

    def _idle(self, m, c) -> None:
        """Accept an instruction; the one-cycle ones finish here."""
        W = self.geom.stlb_ways
        req, done = c.req, c.done
        with m.If(c.accept):
            with m.Switch(req.op):
                with m.Case(InsnOp.TLBWR):
                    # its set is read: written in WR with the E bits read with its rows
                    if W:
                        m.d.comb += c.rd_set.eq(c.index.set)
                    m.next = "WR"
                with m.Case(InsnOp.TLBFILL):
                    # its set is read: its E bits come out of ``set_e`` in FILL
                    if W:
                        m.d.comb += c.rd_set.eq(c.key_set_src)
                    m.next = "FILL_VICTIM"
                with m.Case(InsnOp.ERTN):
                    m.d.sync += [done.eq(1), c.cw.ertn.eq(1)]
                with m.Case(InsnOp.TLBFLUSH):
                    m.d.sync += done.eq(1)
                    if W:
                        with m.If(c.index.in_stlb):
                            c.clear_stlb_set(c.index.set, [Const(1)] * W)
                    with m.If(c.index.in_mtlb):
                        m.d.sync += c.mw.clear.eq(-1)
                with m.Case(InsnOp.TLBCLR):
                    if W:
                        with m.If(c.index.in_stlb):
                            m.d.comb += c.rd_set.eq(c.index.set)
                            m.next = "CLR"
                    with m.If(~c.index.in_stlb):
                        m.d.sync += done.eq(1)
                    with m.If(c.index.in_mtlb):
                        m.d.sync += c.mw.clear.eq(c.match.clr_mtlb)
                with m.Case(InsnOp.TLBSRCH):
                    if W:
                        m.d.comb += c.rd_set.eq(c.key_set_src)
                    m.next = "SRCH"
                with m.Case(InsnOp.TLBRD):
                    m.d.comb += c.rd_set.eq(c.index.set)
                    m.next = "RD_E"
                with m.Case(InsnOp.INVTLB):
                    self._invtlb(m, c)

    def _write(self, m, c) -> None:
        """TLBWR: the entry to the Index (D2, D18), its set's rows and E bits out (read at
        the accept)."""
        W = self.geom.stlb_ways
        m.d.sync += c.done.eq(1)
        # in_stlb and in_mtlb exclude each other; an MTLB-only TLB has no STLB branch at all
        # (no constant-false case in the Verilog)
        if W:
            with m.If(c.index.in_stlb):
                c.write_stlb_way(c.cur_set, Const(1, W) << c.index.way)
        with m.If(c.index.in_mtlb):
            with m.If(c.entry.ps_listed):
                m.d.sync += [c.mw.en.eq(1), c.mw.addr.eq(c.index.entry)]
            with m.Else():
                m.d.sync += c.illegal.eq(1)
        m.next = "IDLE"

    def _invtlb(self, m, c) -> None:
        req, done = c.req, c.done
        with m.If(req.inv_op > 6):
            m.d.sync += [done.eq(1), c.illegal.eq(1)]
        with m.Elif(req.inv_op >= 5):
            if self.geom.has_stlb:
                m.d.comb += c.rd_set.eq(c.key_set_va)
            m.next = "PAGE"
        with m.Elif(req.inv_op < 2):
            m.d.sync += [done.eq(1), c.mw.clear.eq(-1)]
            if self.geom.has_stlb:
                m.d.sync += c.sw.clear_all.eq(1)
        with m.Else():
            # the MTLB is cleared in the last SWEEP cycle, from the latched op and ASID; the
            # sweep reads the first occupied set in the first
            m.next = "SWEEP"

    def _fill(self, m, c) -> None:
        """TLBFILL writes the slot the replacement finds in the E bits of its set, read in the
        cycle before (its set is ``cur_set`` now: read at the accept and again since; D9,
        D10)."""
        g = self.geom
        m.d.sync += c.done.eq(1)
        m.d.comb += c.entry.fill.eq(1)
        with m.If(~c.entry.ps_listed):
            m.d.sync += c.illegal.eq(1)
        v = self.victim
        with m.Elif(c.entry.to_stlb):
            if g.has_stlb:
                c.write_stlb_way(c.cur_set, Const(1, g.stlb_ways) << v.stlb_slot)
                m.d.comb += v.stlb_step.eq(v.stlb_full)
                m.d.sync += c.slot.eq(Cat(c.cur_set[:g.set_bits], v.stlb_slot))
        with m.Else():
            m.d.comb += v.mtlb_step.eq(v.mtlb_full)
            m.d.sync += [c.mw.en.eq(1), c.mw.addr.eq(v.mtlb_slot),
                         c.slot.eq(g.stlb_entries + v.mtlb_slot)]
        m.next = "IDLE"

    def _sweep(self, m, c) -> None:
        """INVTLB op 2-4: the rows out are an occupied set's (if ``sweep.rows``), the next
        occupied set is being read (if ``sweep.issue``; else the sweep ends here)."""
        last = Const(1)
        if self.geom.has_stlb:
            with m.If(c.sweep.rows):
                asid_eq = c.match.stlb_asid_eq
                c.clear_stlb_set(c.cur_set, [_invtlb_cond(c.inv_op, r.tag.g, asid_eq[w])
                                             for w, r in enumerate(c.rows)])
            m.d.comb += c.rd_set.eq(c.sweep.set)
            last = c.sweep.last
        with m.If(last):
            m.d.sync += [c.done.eq(1), c.mw.clear.eq(c.match.inv_mtlb)]
            m.next = "IDLE"

    def _apply(self, m, c, fsm) -> None:
        """The entry TLBWR and TLBFILL write, to whichever bank is written."""
        new = c.entry.entry
        if self.geom.has_stlb:
            m.d.comb += c.sweep.active.eq(fsm.ongoing("SWEEP"))       # by the state alone
            m.d.sync += [c.sw.data.tag.eq(new.tag),
                         c.sw.data.lo0.eq(new.lo0), c.sw.data.lo1.eq(new.lo1)]
        m.d.sync += [c.mw.entry.eq(new), c.mw.mask.eq(c.entry.compare), c.mw.e.eq(c.entry.e)]


def _registered(m, outer):
    """``outer`` (a port the unit drives), for the states to drive in ``sync``: an
    instruction's effects leave the unit from registers, 0 in every cycle no state
    sets them. (Assigned in ``sync`` rather than in ``comb`` ahead of a register, a
    simulator evaluates what the states decide once per clock edge, not at every change
    of an input.)"""
    m.d.sync += [port.eq(0) for _path, _member, port in outer.signature.flatten(outer)]
    return outer


def _register(m, port, value):
    """``port`` (a bundle the unit drives) takes ``value`` (one of the same signature) at
    every clock edge."""
    sig = port.signature
    m.d.sync += [p.eq(v) for (_p, _m, p), (_q, _n, v) in zip(sig.flatten(port), sig.flatten(value),
                                                              strict=True)]


def _invtlb_cond(opv, g_bit, asid_eq):
    """D15: the G/ASID condition of INVTLB ops 0..4 for one entry: its G bit, and whether
    its ASID is the instruction's (from the instruction match, whose key holds that ASID
    during INVTLB)."""
    return Mux(opv < 2, 1, Mux(opv == 2, g_bit, Mux(opv == 3, ~g_bit, ~g_bit & asid_eq)))
