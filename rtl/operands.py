"""What the instruction unit's states read, each a block of its own: the entry TLBWR and
TLBFILL write (:class:`EntrySource`), TLBIDX.Index decoded (:class:`IndexDecode`), the
instruction match (:class:`InstructionMatch`), TLBSRCH's and TLBRD's results
(:class:`SearchResult`, :class:`EntryRead`), and the interface through which the unit
connects them to the states (:func:`operands_signature`)."""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from loongtlb.sw_model.geometry import Geometry

from .csrfile import read_result_signature, regs_signature, search_result_signature
from .layouts import (InsnOp, csr_layout, half_layout, mask_groups, mtlb_data_layout,
                      mtlb_entry_layout, stlb_entry_layout, tag_layout)
from .match import Match
from .pagesize import PageSize
from .storage import mtlb_regs_signature
from .util import bit_at, priority

__all__ = ["EntrySource", "IndexDecode", "InstructionMatch", "EntryRead", "SearchResult",
           "index_signature", "operands_signature"]


def operands_signature(geom: Geometry) -> wiring.Signature:
    """The instruction unit's states and the blocks they read (as the unit sees it: what
    it tells them Out, what they give In). Out: an instruction is accepted (``accept``),
    TLBSRCH's compare (``capture``), TLBFILL's write (``fill``), and (with
    an STLB) the set whose rows are out (``cur_set``) with its E bits a cycle later
    (``set_e``). In: the entry to write and what goes with it (:class:`EntrySource`), the
    Index decoded (``index``), the entries each clear clears (:class:`InstructionMatch`),
    the STLB sets TLBFILL and TLBSRCH (``src_set``) and INVTLB op 5/6 (``inv_set``) read
    (:class:`~rtl.pagesize.PageSize`, D1), TLBSRCH's result (``search``, ``multi``) and
    TLBRD's (``read``)."""
    W, M = geom.stlb_ways, geom.mtlb_entries
    sets = max(1, geom.set_bits)
    members = {
        "accept": Out(1), "capture": Out(1), "fill": Out(1),
        "entry": In(mtlb_entry_layout(geom)), "e": In(1), "to_stlb": In(1),
        "compare": In(max(1, len(mask_groups(geom)))), "ps_listed": In(1),
        "index": In(index_signature(geom)), "clr_mtlb": In(M), "inv_mtlb": In(M),
        "page_mtlb": In(M), "search": In(search_result_signature(geom)), "multi": In(1),
        "read": In(read_result_signature(geom)),
    }
    if geom.has_stlb:
        members.update(cur_set=Out(sets), set_e=Out(W), clr_stlb=In(W), inv_stlb=In(W),
                       page_stlb=In(W), src_set=In(sets), inv_set=In(sets))
    return wiring.Signature(members)


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
    """The instructions' match and the sets they read. Its key, latched when an instruction
    is accepted (so that the match starts from flip-flops): INVTLB's VA and ASID operands,
    else TLBEHI's (or TLBREHI's) VPPN and the current ASID; INVTLB's op is latched with it.
    It matches the STLB set whose rows are out and every MTLB entry (TLBSRCH, INVTLB op 5/6,
    and INVTLB op 2-4's ASID test), and gives, in either bank, the entries TLBCLR, INVTLB
    op 2-4 and INVTLB op 5/6 clear (D15, D16). Combinational but for the key: 0 cycles.

    Members
    -------
    accept, op, va, asid, inv_op : In
        The instruction being accepted and its operands.
    src_vppn, cur_asid : In
        The VPPN TLBWR/TLBFILL write, ASID.ASID.
    stlb_tags, stlb_care : In (with an STLB)
        The tags of the set whose rows are out, the STLB's compare bits.
    mtlb_regs : Out(mtlb_regs_signature)
    stlb_hits, mtlb_hits : Out
        ``stlb_hits`` compare the tags alone: the set's E bits, read with its rows, come
        registered a cycle after them (``set_e``) and gate the hits where an instruction
        needs it (TLBSRCH, in :class:`SearchResult`); a clear keeps E = 0 as it was.
    clr_stlb, inv_stlb, page_stlb : Out (with an STLB); clr_mtlb, inv_mtlb, page_mtlb : Out
        The entries TLBCLR (not G, the current ASID), INVTLB op 0-4 (D15, from the latched
        op) and INVTLB op 5/6 (the matches, not G for op 5) clear: the ways of the set
        whose rows are out, the MTLB's entries.
    """

    LATENCY = {"every output": 0, "key": 1}

    def __init__(self, geom: Geometry):
        self.geom = geom
        W, M = geom.stlb_ways, geom.mtlb_entries
        members = {
            "accept": In(1), "op": In(InsnOp), "va": In(geom.grlen), "asid": In(10),
            "inv_op": In(5), "src_vppn": In(geom.vppn_bits), "cur_asid": In(geom.asid_bits),
            "mtlb_regs": Out(mtlb_regs_signature(geom)), "mtlb_hits": Out(M),
            "clr_mtlb": Out(M), "inv_mtlb": Out(M), "page_mtlb": Out(M),
        }
        if geom.has_stlb:
            members.update(
                stlb_tags=In(data.ArrayLayout(tag_layout(geom), W)),
                stlb_care=In(geom.vppn_bits), stlb_hits=Out(W), clr_stlb=Out(W),
                inv_stlb=Out(W), page_stlb=Out(W))
        super().__init__(members)

    def elaborate(self, platform):
        g = self.geom
        W, M = g.stlb_ways, g.mtlb_entries
        m = Module()
        key_vpn = Signal(g.vppn_bits, name="key_vpn")
        key_asid = Signal(g.asid_bits, name="key_asid")
        inv_op = Signal(5, name="inv_op_r")
        with m.If(self.accept):
            is_inv = self.op == InsnOp.INVTLB
            m.d.sync += [key_vpn.eq(Mux(is_inv, self.va[13:g.valen], self.src_vppn)),
                         key_asid.eq(Mux(is_inv, self.asid[:g.asid_bits], self.cur_asid)),
                         inv_op.eq(self.inv_op)]
        banks = [("mtlb", [self.mtlb_regs.tags[i] for i in range(M)],
                  [self.mtlb_regs.cares[i] for i in range(M)], self.mtlb_regs.e)]
        if W:
            banks.append(("stlb", [self.stlb_tags[w] for w in range(W)],
                          [self.stlb_care] * W, Const(-1, W)))
        for bank, tags, cares, e in banks:
            mt = m.submodules[f"{bank}_match"] = Match(g, len(tags))
            for i, (tag, care) in enumerate(zip(tags, cares)):
                m.d.comb += [mt.tags[i].eq(tag), mt.cares[i].eq(care)]
            m.d.comb += [mt.e.eq(e), mt.key_vpn.eq(key_vpn), mt.key_asid.eq(key_asid),
                         getattr(self, f"{bank}_hits").eq(mt.hits)]
            # the clears, per entry: TLBCLR's from the tags and the current ASID, INVTLB's
            # from the latched op and the match
            g_bits = Cat(t.g for t in tags)
            m.d.comb += [
                getattr(self, f"clr_{bank}").eq(Cat(~t.g & (t.asid == self.cur_asid)
                                                    for t in tags)),
                getattr(self, f"inv_{bank}").eq(Cat(_invtlb_cond(inv_op, t.g, mt.asid_eq[i])
                                                    for i, t in enumerate(tags))),
                getattr(self, f"page_{bank}").eq(mt.hits & ~Mux(inv_op == 5, g_bits, 0))]
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


def _invtlb_cond(opv, g_bit, asid_eq):
    """D15: the G/ASID condition of INVTLB ops 0..4 for one entry: its G bit, and whether
    its ASID is the instruction's (from the instruction match, whose key holds that ASID
    during INVTLB)."""
    return Mux(opv < 2, 1, Mux(opv == 2, g_bit, Mux(opv == 3, ~g_bit, ~g_bit & asid_eq)))
