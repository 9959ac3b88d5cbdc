"""The TLB unit: STLB and MTLB storage, the TLB CSRs, the instruction unit, translation ports.

Everything follows ``decisions.md`` D1-D21; the reference model in ``sw_model.tlb`` is the
independent implementation it is checked against.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from sw_model.csr import CSR, CSR_NAMES, sign_extended, write_mask
from sw_model.geometry import Geometry

from .layouts import (Access, Exc, InsnOp, csr_layout, half_layout, mask_groups,
                      mtlb_data_layout, mtlb_entry_layout, stlb_entry_layout,
                      tag_layout)
from .match import Match, care_of
from .util import bit_at, case_of, decoder, first_one, onehot_mux, priority

__all__ = ["TLBUnit", "LookupSignature", "CYCLES"]


def _or_all(m, vectors, width):
    """Bitwise OR of equal-width vectors."""
    out = Signal(width, name="or_all")
    acc = vectors[0]
    for v in vectors[1:]:
        acc = acc | v
    m.d.comb += out.eq(acc)
    return out

#: worst-case cycles from accepting an instruction to its completion (``insn_done``);
#: ``sets`` stands for the number of STLB sets
CYCLES = {
    "lookup": "lookup_latency, 1 to 3 (a new lookup every cycle on every port)",
    "TLBWR": "1", "TLBFILL": "2", "TLBSRCH": "3", "TLBRD": "2", "ERTN": "1",
    "TLBFLUSH": "1", "TLBCLR": "2 (STLB set), 1 (MTLB)",
    "INVTLB 0/1": "1", "INVTLB 5/6": "2",
    "INVTLB 2-4": "1 + the STLB sets that hold a valid entry, or 2 if none does (at most sets + 1)",
}


class LookupSignature(wiring.Signature):
    """One translation port, as seen from the TLB unit.

    In: ``valid``, ``va``, ``access`` (load / store / fetch), ``effect`` (1: an exception
    takes effect, D13; 0: a probe that changes nothing). Out, ``lookup_latency`` cycles
    after ``valid`` (1; 2 with a register after the select of the hit entry; 3 with one
    after the compare as well): ``resp_valid``, ``exc``, ``pa``, ``mat``; an exception's CSR
    writes take effect at the edge that ends that cycle. With latency 3 the MTLB's halves
    are read a cycle after its compare, so a lookup overlapping a TLB write may see the
    written halves with the old tags: drain the lookups before TLB maintenance.
    """

    def __init__(self, geom: Geometry):
        super().__init__({
            "valid": In(1), "va": In(geom.grlen), "access": In(Access), "effect": In(1),
            "resp_valid": Out(1), "exc": Out(Exc), "pa": Out(geom.palen), "mat": Out(2),
        })


class TLBUnit(wiring.Component):
    """A LoongArch TLB for one geometry.

    Storage
    -------
    The STLB is one :class:`~amaranth.lib.memory.Memory` per way, ``sets`` rows deep, one
    entry (tag and both halves, no E) per row. One memory per way makes TLBWR and TLBFILL a
    single write to one memory with no read-modify-write, and reading a set is reading every
    way at one address. The E bits live in registers beside the memories, one ``sets``-bit
    vector per way, so that INVTLB op 0/1 and TLBFLUSH clear them in one cycle and TLBFILL
    finds a free way without reading memory. Every memory has one read port per translation
    port and one for the instruction unit, all transparent to its write port. The MTLB
    keeps its ``entries`` tags (with their E bits and compare masks) in registers, matched
    all at once, and each entry's PS and halves in a memory with one asynchronous read port
    per translation port (addressed by the lowest hit) and one for TLBRD.

    Ports
    -----
    csr_addr, csr_rdata : In(14), Out(GRLEN)
        Combinational CSR read (interfaces.md section 2; unknown numbers read 0).
    csr_we, csr_wdata : In(1), In(GRLEN)
        CSR write, taking effect at the clock edge (D17, D19).
    insn_valid, insn_ready, insn_op, insn_inv_op, insn_asid, insn_va : handshake and operands
        An instruction is accepted in a cycle with ``insn_valid & insn_ready``; operands
        must hold until ``insn_done``.
    insn_done, insn_illegal, insn_slot : Out
        ``insn_done`` is high in the instruction's last cycle, with ``insn_illegal`` (D15,
        D19) and, for TLBFILL, ``insn_slot`` (the Index written). Its CSR and TLB updates
        take effect at the clock edge that ends that cycle.
    multi_hit : Out(1)
        The sticky flag of D7.
    lookup : Out(LookupSignature).array(lookup_ports)
        Translation ports. A lookup uses CRMD.PLV, ASID.ASID, MISC.DWPL and STLBPS; when
        two ports take effect in one cycle, the lowest-numbered port's CSR writes win.

    Cycles (``insn_valid`` to the edge after ``insn_done``): see :data:`CYCLES`.
    Lookups, CSR writes and instructions are meant not to overlap in time; when they do,
    an instruction's CSR writes win over a lookup's, and a lookup's over the CSR port's.
    """

    def __init__(self, geom: Geometry):
        self.geom = geom
        # the E bits, made here so that a simulation wrapper can read them before elaboration
        self._e_way = [Signal(geom.stlb_sets, name=f"stlb_e_way{w}")
                       for w in range(geom.stlb_ways)]
        self._mtlb_e = Signal(geom.mtlb_entries, name="mtlb_e")
        #: every slot's E bit in Index order (way-major STLB, then the MTLB): what exists,
        #: for a simulation checker to compare; not a port
        self.e_bits = Cat(*self._e_way, self._mtlb_e)
        #: the CSRs: one register per CSR, fields at their architectural positions
        self.csr = {name: Signal(csr_layout(geom, name), name=f"csr_{name.lower()}")
                    for name in CSR_NAMES if name not in ("PRCFG3", "STLBPS")}
        self.csr["STLBPS"] = Signal(csr_layout(geom, "STLBPS"), name="csr_stlbps",
                                    init={"PS": geom.stlb_page_shift})
        self.stlbps = self.csr["STLBPS"].PS
        #: what csrrd returns for each CSR (D17: constants and sign extension included)
        self.csr_values = {name: self._read_value(name) for name in CSR_NAMES}
        super().__init__({
            "csr_addr": In(14), "csr_rdata": Out(geom.grlen),
            "csr_we": In(1), "csr_wdata": In(geom.grlen),
            "insn_valid": In(1), "insn_ready": Out(1), "insn_op": In(InsnOp),
            "insn_inv_op": In(5), "insn_asid": In(10), "insn_va": In(geom.grlen),
            "insn_done": Out(1), "insn_illegal": Out(1),
            "insn_slot": Out(geom.index_bits),
            "multi_hit": Out(1),
            "lookup": Out(LookupSignature(geom)).array(geom.lookup_ports),
        })

    def _read_value(self, name):
        g = self.geom
        if name == "PRCFG3":
            return Const(g.prcfg3, g.grlen)
        value = self.csr[name].as_value()
        if name == "ASID":
            value = value | (g.asid_bits << 16)
        if sign_extended(g, name):
            sext = ((1 << g.grlen) - 1) ^ ((1 << g.valen) - 1)
            value = value | Mux(value[g.valen - 1], sext, 0)
        return value

    # ---- small builders ------------------------------------------------------------------
    def _masks_for_ps(self, m, ps, name):
        """The compare mask of a page size: a 1 for each mask group (rtl.layouts.mask_groups)
        it compares. An unlisted PS never reaches a match (such writes are illegal, D19)."""
        groups = mask_groups(self.geom)
        table = {p: sum(1 << k for k, (lo, _hi) in enumerate(groups) if p - 12 <= lo)
                 for p in self.geom.page_shifts}
        return case_of(m, ps, table, max(1, len(groups)), name)

    def _page_mask(self, m, ps, name):
        """PA bits below PS (taken from the VA)."""
        g = self.geom
        return case_of(m, ps, {p: ((1 << p) - 1) & ((1 << g.palen) - 1) for p in g.page_shifts},
                       g.palen, name)

    def _set_of(self, m, vpn, name):
        """STLB set of a VA given as VA[VALEN-1:13] (D1): VA[STLBPS+set_bits:STLBPS+1]."""
        g = self.geom
        table = {p: vpn[p - 12:p - 12 + g.set_bits] for p in g.page_shifts}
        return case_of(m, self.stlbps, table, max(1, g.set_bits), name)

    def _half_bit(self, m, va, ps, name):
        """VA[PS]: 0 selects the even half, 1 the odd half."""
        return case_of(m, ps, {p: va[p] for p in self.geom.page_shifts}, 1, name)

    def _half_from_elo(self, elo):
        """A TLBELO image (CSR view) as an entry half."""
        half = Signal(half_layout(self.geom))
        fields = dict(v=elo.V, d=elo.D, plv=elo.PLV, mat=elo.MAT, ppn=elo.PPN)
        if not self.geom.is_la32:
            fields.update(nr=elo.NR, nx=elo.NX, rplv=elo.RPLV)
        return half, [getattr(half, k).eq(v) for k, v in fields.items()]

    def _elo_from_half(self, elo, half, g):
        """Statements writing an entry half (and the entry's G) into a TLBELO CSR view."""
        stmts = [elo.as_value().eq(0), elo.V.eq(half.v), elo.D.eq(half.d), elo.PLV.eq(half.plv),
                 elo.MAT.eq(half.mat), elo.G.eq(g), elo.PPN.eq(half.ppn)]
        if not self.geom.is_la32:
            stmts += [elo.NR.eq(half.nr), elo.NX.eq(half.nx), elo.RPLV.eq(half.rplv)]
        return stmts

    def _pick_after_tag(self, onehot, entries):
        """The fields after the tag (what a lookup uses) of the entry ``onehot`` selects, as a
        view of the entries' layout with the tag zero: one mux for all of them."""
        layout = entries[0].shape()
        tag_size = tag_layout(self.geom).size
        picked = onehot_mux(onehot, [e.as_value()[tag_size:] for e in entries])
        return layout(Cat(Const(0, tag_size), picked))

    # ---- the design ----------------------------------------------------------------------
    def elaborate(self, platform):
        g = self.geom
        m = Module()
        W, S, M = g.stlb_ways, g.stlb_sets, g.mtlb_entries
        has_stlb = g.has_stlb

        csr = self.csr
        stlbps = self.stlbps
        istlbr = csr["TLBRERA"].IsTLBR
        cur_asid = csr["ASID"].ASID
        # the read mux in a module of its own: the simulator then re-evaluates only this
        # when csr_addr changes, not the whole unit
        m.submodules.csr_read = rd = Module()
        with rd.Switch(self.csr_addr):
            for name in CSR_NAMES:
                with rd.Case(CSR[name]):
                    rd.d.comb += self.csr_rdata.eq(self.csr_values[name])

        with m.If(self.csr_we):
            with m.Switch(self.csr_addr):
                for name in CSR_NAMES:
                    mask = write_mask(g, name)
                    if name == "STLBPS":
                        with m.Case(CSR[name]):
                            listed = Cat(self.csr_wdata[:6] == p for p in g.page_shifts).any()
                            with m.If(listed):
                                m.d.sync += csr[name].PS.eq(self.csr_wdata[:6])
                    elif mask:
                        with m.Case(CSR[name]):
                            reg = csr[name].as_value()
                            m.d.sync += reg.eq((reg & ~mask) | (self.csr_wdata & mask))

        multi_hit = Signal()
        m.d.comb += self.multi_hit.eq(multi_hit)

        # ---- storage ---------------------------------------------------------------------
        stlb_layout = stlb_entry_layout(g)
        e_way = self._e_way
        mems, wports = [], []
        for w in range(W):
            mem = memory.Memory(shape=stlb_layout, depth=S, init=[])
            m.submodules[f"stlb_way{w}"] = mem
            mems.append(mem)
            wports.append(mem.write_port())
        # The MTLB: the tags in registers, for the match of every entry at once; PS and both
        # halves in a memory, read by index (the first hit, TLBRD's Index) through one
        # asynchronous port per reader. On an FPGA that is LUT RAM in place of a one-hot
        # select over every entry per port; in simulation, an array read.
        mtlb_tags = [Signal(tag_layout(g), name=f"mtlb{i}_tag") for i in range(M)]
        mtlb_data = m.submodules.mtlb_data = memory.Memory(
            shape=mtlb_data_layout(g), depth=M, init=[])
        mtlb_wport = mtlb_data.write_port()
        mtlb_e = self._mtlb_e
        # each MTLB entry keeps its compare mask (decoded from PS once, when written) in a
        # register beside it: one decoder for the bank instead of one per entry
        mtlb_masks = [Signal(max(1, len(mask_groups(g))), name=f"mtlb{i}_mask")
                      for i in range(M)]
        stlb_mask = self._masks_for_ps(m, stlbps, "stlb_mask") if has_stlb else None
        # the VPPN bits each entry compares, wired from the masks once for every match
        stlb_care = Signal(g.vppn_bits, name="stlb_care")
        if has_stlb:
            m.d.comb += stlb_care.eq(care_of(g, stlb_mask))
        mtlb_cares = [Signal(g.vppn_bits, name=f"mtlb{i}_care") for i in range(M)]
        m.d.comb += [mtlb_cares[i].eq(care_of(g, mtlb_masks[i])) for i in range(M)]

        # builders used by the lookup ports and the instruction unit; ``mod`` is the module
        # that owns the logic they make
        def stlb_match(mod, name, e_bits, rows, key_vpn, key_asid):
            match = mod.submodules[name] = Match(g, W)
            for w in range(W):
                mod.d.comb += [match.tags[w].eq(rows[w].tag), match.cares[w].eq(stlb_care)]
            mod.d.comb += [match.e.eq(e_bits), match.key_vpn.eq(key_vpn),
                           match.key_asid.eq(key_asid)]
            return match

        def mtlb_match(mod, name, key_vpn, key_asid):
            match = mod.submodules[name] = Match(g, M)
            for i in range(M):
                mod.d.comb += [match.tags[i].eq(mtlb_tags[i]), match.cares[i].eq(mtlb_cares[i])]
            mod.d.comb += [match.e.eq(mtlb_e), match.key_vpn.eq(key_vpn),
                           match.key_asid.eq(key_asid)]
            return match

        def e_of_set(mod, set_, name):
            """The E bits of every way of one STLB set."""
            bits = Signal(W, name=name)
            mod.d.comb += bits.eq(Cat(bit_at(e_way[w], set_) for w in range(W)))
            return bits

        # ---- translation ports -----------------------------------------------------------
        # Ports are built last to first so that port 0's CSR writes come last and win.
        for p in reversed(range(g.lookup_ports)):
            m.submodules[f"lookup{p}"] = pm = Module()
            self._lookup_port(pm, m, p, csr, mems, wports, e_of_set, mtlb_data, stlb_match,
                              mtlb_match, multi_hit)

        # ---- instruction unit ------------------------------------------------------------
        self._instructions(m, csr, mems, wports, e_way, e_of_set, mtlb_tags, mtlb_data,
                           mtlb_wport, mtlb_e, mtlb_masks,
                           stlb_match, mtlb_match, multi_hit, istlbr, cur_asid)
        return m

    def _lookup_port(self, m, top, p, csr, mems, wports, e_of_set, mtlb_data, stlb_match,
                     mtlb_match, multi_hit):
        g = self.geom
        W = g.stlb_ways
        port = self.lookup[p]
        va = Signal(g.grlen, name=f"lk{p}_va")
        access = Signal(Access, name=f"lk{p}_access")
        effect = Signal(name=f"lk{p}_effect")
        valid = Signal(name=f"lk{p}_valid")
        m.d.sync += [va.eq(port.va), access.eq(port.access), effect.eq(port.effect),
                     valid.eq(port.valid)]
        vpn = va[13:g.valen]
        asid = csr["ASID"].ASID

        # cycle 0: read the set the incoming VA selects; cycle 1: match and check
        if W:
            set_in = self._set_of(m, port.va[13:g.valen], f"lk{p}_set_in")
            set_ = Signal.like(set_in, name=f"lk{p}_set")
            m.d.sync += set_.eq(set_in)
            rows = []
            for w in range(W):
                rp = mems[w].read_port(transparent_for=(wports[w],))
                m.d.comb += rp.addr.eq(set_in)
                rows.append(rp.data)
            s = stlb_match(m, f"lk{p}_stlb", e_of_set(m, set_, f"lk{p}_set_e"), rows, vpn, asid)
        mm = mtlb_match(m, f"lk{p}_mtlb", vpn, asid)

        def stage(value, name):
            """``value`` one cycle later."""
            reg = Signal.like(value, name=f"lk{p}_{name}_r")
            m.d.sync += reg.eq(value)
            return reg

        def stage_request():
            return (stage(va, "va"), stage(access, "access"), stage(effect, "effect"),
                    stage(valid, "valid"))

        s_hit = s.hit if W else Const(0)
        s_multi = s.multi if W else Const(0)
        if W:
            # the STLB's hit row (the lowest way): a small one-hot select of W rows
            s_hit_row = self._pick_after_tag(s.first_onehot, rows)
            s_lo0, s_lo1 = s_hit_row.lo0, s_hit_row.lo1
        m_first, m_hit_any, m_multi = mm.first, mm.hit, mm.multi
        if g.lookup_latency == 3:
            # a register right after the compare: the MTLB's hit vector and the STLB's hit
            # row; the MTLB's lowest hit and its read come a cycle after its match
            va, access, effect, valid = stage_request()
            _onehot, m_first, m_hit_any, m_multi = priority(m, stage(mm.hits, "mtlb_hits"),
                                                            f"lk{p}_mtlb_first")
            if W:
                s_hit, s_multi = stage(s.hit, "stlb_hit"), stage(s.multi, "stlb_multi")
                s_lo0, s_lo1 = stage(s_lo0, "stlb_lo0"), stage(s_lo1, "stlb_lo1")
        hit = s_hit | m_hit_any
        multi = m_multi | s_multi | (s_hit & m_hit_any)
        # the hit entry: the STLB wins over the MTLB (lower Index), then the lowest way/entry
        m_read = mtlb_data.read_port(domain="comb")
        m.d.comb += m_read.addr.eq(m_first)
        m_hit = m_read.data
        if W:
            lo0, lo1 = Mux(s_hit, s_lo0, m_hit.lo0), Mux(s_hit, s_lo1, m_hit.lo1)
            ps = Mux(s_hit, self.stlbps, m_hit.ps)
        else:
            lo0, lo1, ps = m_hit.lo0, m_hit.lo1, m_hit.ps
        ps_sig = Signal(6, name=f"lk{p}_ps")
        m.d.comb += ps_sig.eq(ps)
        if g.lookup_latency >= 2:
            # a register between the select and the checks: the hit entry's halves and what
            # the checks and the exception's CSR writes need, one cycle on
            va, access, effect, valid = stage_request()
            hit, multi = stage(hit, "hit"), stage(multi, "multi")
            lo0, lo1 = stage(lo0, "lo0"), stage(lo1, "lo1")
            ps_sig = stage(ps_sig, "ps")
            vpn = va[13:g.valen]
        half = Signal(half_layout(g), name=f"lk{p}_half")
        odd = self._half_bit(m, va, ps_sig, f"lk{p}_odd")
        m.d.comb += half.eq(Mux(odd, lo1, lo0))

        # D11/D12: the checks after a hit
        plv = csr["CRMD"].PLV
        nr, nx, rplv = (Const(0), Const(0), Const(0)) if g.is_la32 else (half.nr, half.nx,
                                                                          half.rplv)
        priv_ok = Mux(rplv, plv == half.plv, plv <= half.plv)
        dwpl_off = (plv <= 2) & (csr["MISC"].DWPL >> plv)[0]
        exc = Signal(Exc, name=f"lk{p}_exc")
        with m.If(~hit):
            m.d.comb += exc.eq(Exc.TLBR)
        with m.Elif(~half.v):
            with m.Switch(access):
                with m.Case(Access.LOAD):
                    m.d.comb += exc.eq(Exc.PIL)
                with m.Case(Access.STORE):
                    m.d.comb += exc.eq(Exc.PIS)
                with m.Default():
                    m.d.comb += exc.eq(Exc.PIF)
        with m.Elif(access == Access.FETCH):
            with m.If(nx):
                m.d.comb += exc.eq(Exc.PNX)
            with m.Elif(~priv_ok):
                m.d.comb += exc.eq(Exc.PPI)
        with m.Elif(~priv_ok):
            m.d.comb += exc.eq(Exc.PPI)
        with m.Elif((access == Access.LOAD) & nr):
            m.d.comb += exc.eq(Exc.PNR)
        with m.Elif((access == Access.STORE) & ~half.d & ~dwpl_off):
            m.d.comb += exc.eq(Exc.PME)

        page_mask = self._page_mask(m, ps_sig, f"lk{p}_page_mask")
        frame = Cat(Const(0, 12), half.ppn)
        m.d.comb += [
            port.resp_valid.eq(valid),
            port.exc.eq(exc),
            port.pa.eq((frame & ~page_mask) | (va[:g.palen] & page_mask)),
            port.mat.eq(half.mat),
        ]

        # D13: the side effects of an exception that takes effect; D7: the sticky flag
        # (the CSRs are registers of the top module, so these writes belong to it)
        with top.If(valid & effect):
            with top.If(multi):
                top.d.sync += multi_hit.eq(1)
            with top.If(exc == Exc.TLBR):
                top.d.sync += [csr["TLBRBADV"].VA.eq(va), csr["TLBREHI"].VPPN.eq(vpn),
                               csr["TLBRERA"].IsTLBR.eq(1)]
            with top.Elif(exc != Exc.NONE):
                top.d.sync += [csr["BADV"].VA.eq(va), csr["TLBEHI"].VPPN.eq(vpn),
                               csr["ESTAT"].Ecode.eq(exc.as_value() - 1),
                               csr["ESTAT"].EsubCode.eq(0)]

    def _instructions(self, m, csr, mems, wports, e_way, e_of_set, mtlb_tags, mtlb_data,
                      mtlb_wport, mtlb_e, mtlb_masks,
                      stlb_match, mtlb_match, multi_hit, istlbr, cur_asid):
        g = self.geom
        W, S, M = g.stlb_ways, g.stlb_sets, g.mtlb_entries
        set_bits = g.set_bits

        # operands, latched when an instruction is accepted (the match key below too)
        op = Signal(InsnOp, name="insn_op_r")
        inv_op = Signal(5, name="insn_inv_op_r")
        accept = self.insn_valid & self.insn_ready
        with m.If(accept):
            m.d.sync += [op.eq(self.insn_op), inv_op.eq(self.insn_inv_op)]

        # ---- what TLBWR / TLBFILL write (D3, D4, D5) ---------------------------------------
        src_vppn = Mux(istlbr, csr["TLBREHI"].VPPN, csr["TLBEHI"].VPPN)
        src_ps = Signal(6, name="src_ps")
        m.d.comb += src_ps.eq(Mux(istlbr, csr["TLBREHI"].PS, csr["TLBIDX"].PS))
        elo0 = Mux(istlbr, csr["TLBRELO0"].as_value(), csr["TLBELO0"].as_value())
        elo1 = Mux(istlbr, csr["TLBRELO1"].as_value(), csr["TLBELO1"].as_value())
        elo0_v = csr_layout(g, "TLBELO0")(Signal(g.grlen, name="src_elo0"))
        elo1_v = csr_layout(g, "TLBELO1")(Signal(g.grlen, name="src_elo1"))
        m.d.comb += [elo0_v.as_value().eq(elo0), elo1_v.as_value().eq(elo1)]
        # D4: TLBFILL under tlbfill_ne "ignore" writes E = 1 whatever NE holds (TLBFILL writes
        # from the FILL state, TLBWR from IDLE)
        src_e = Signal(name="src_e")
        m.d.comb += src_e.eq(istlbr | ~csr["TLBIDX"].NE)
        half0, stmts0 = self._half_from_elo(elo0_v)
        half1, stmts1 = self._half_from_elo(elo1_v)
        m.d.comb += stmts0 + stmts1
        new_entry = Signal(mtlb_entry_layout(g), name="new_entry")
        m.d.comb += [new_entry.tag.asid.eq(cur_asid), new_entry.tag.g.eq(elo0_v.G & elo1_v.G),
                     new_entry.tag.vppn.eq(src_vppn), new_entry.ps.eq(src_ps),
                     new_entry.lo0.eq(half0), new_entry.lo1.eq(half1)]
        new_stlb = Signal(stlb_entry_layout(g), name="new_stlb_entry")
        m.d.comb += [new_stlb.tag.eq(new_entry.tag), new_stlb.lo0.eq(new_entry.lo0),
                     new_stlb.lo1.eq(new_entry.lo1)]
        ps_listed = Cat(src_ps == p for p in g.page_shifts).any()
        new_mask = self._masks_for_ps(m, src_ps, "new_entry_mask")

        # ---- TLBIDX.Index decoded (D2, D18) -----------------------------------------------
        index = csr["TLBIDX"].Index
        in_stlb = Signal(name="index_in_stlb")
        in_mtlb = Signal(name="index_in_mtlb")
        if W:
            m.d.comb += in_stlb.eq(index < g.stlb_entries)
        m.d.comb += in_mtlb.eq(~in_stlb & (index < g.total_entries))
        idx_set = index[:set_bits] if set_bits else Const(0, 1)
        idx_way = Signal(range(max(2, W)), name="idx_way")
        m.d.comb += idx_way.eq(index >> set_bits)
        idx_m = Signal(range(max(2, M)), name="idx_mtlb")
        m.d.comb += idx_m.eq(index - g.stlb_entries)
        rd_port = mtlb_data.read_port(domain="comb")      # TLBRD's read of the MTLB data
        m.d.comb += rd_port.addr.eq(idx_m)
        rd_data = rd_port.data

        # ---- TLBFILL placement (D9, D10) --------------------------------------------------
        lfsr = Signal(16, init=g.seed, name="lfsr")
        lfsr_next = Mux(lfsr[0], (lfsr >> 1) ^ 0xB400, lfsr >> 1)
        to_stlb = Signal(name="fill_to_stlb")
        if W:
            m.d.comb += to_stlb.eq(src_ps == self.stlbps)
        # comb-heavy decoding in a module of its own (cheaper to simulate, see csr_read)
        m.submodules.insn_decode = dm = Module()
        fill_set = self._set_of(dm, src_vppn, "fill_set") if W else Const(0, 1)

        def place(name, e_bits, n):
            """Slot in a bank of n: first free, else the policy; returns (slot, full)."""
            free = first_one(dm, ~e_bits, f"{name}_free")
            full = e_bits.all()
            slot = Signal(range(max(2, n)), name=f"{name}_victim")
            rr = Signal(range(max(2, n)), name=f"{name}_rr")
            if g.policy == "lfsr":
                policy_choice = (lfsr_next * n)[16:]
            else:
                policy_choice = rr
            dm.d.comb += slot.eq(Mux(full, policy_choice, free))
            # registered: TLBFILL finds its slot in the accept cycle and writes in the next,
            # so the search (the E bits, the lowest free one, the policy) ends at a register
            slot_r = Signal.like(slot, name=f"{name}_victim_r")
            full_r = Signal(name=f"{name}_full_r")
            m.d.sync += [slot_r.eq(slot), full_r.eq(full)]
            return slot_r, full_r, rr

        if W:
            fill_way, stlb_full, rr_stlb = place("stlb", e_of_set(dm, fill_set, "fill_set_e"), W)
        fill_m, mtlb_full, rr_mtlb = place("mtlb", mtlb_e, M)

        # ---- the instruction match (TLBSRCH and INVTLB op 5/6) ----------------------------
        # its key is chosen when the instruction is accepted and held in a register, so the
        # match starts from flip-flops, not from the operation decode
        key_vpn = Signal(g.vppn_bits, name="insn_key_vpn")
        key_asid = Signal(g.asid_bits, name="insn_key_asid")
        with m.If(accept):
            is_inv = self.insn_op == InsnOp.INVTLB
            m.d.sync += [key_vpn.eq(Mux(is_inv, self.insn_va[13:g.valen], src_vppn)),
                         key_asid.eq(Mux(is_inv, self.insn_asid[:g.asid_bits], cur_asid))]
        rd_set = Signal(max(1, set_bits), name="insn_rd_set")       # set read in this cycle
        cur_set = Signal(max(1, set_bits), name="insn_set")         # set whose rows are out
        m.d.sync += cur_set.eq(rd_set)
        if W:
            rows = []
            for w in range(W):
                rp = mems[w].read_port(transparent_for=(wports[w],))
                m.d.comb += rp.addr.eq(rd_set)
                rows.append(rp.data)
            cur_set_e = e_of_set(dm, cur_set, "insn_set_e")
            s = stlb_match(dm, "insn_stlb", cur_set_e, rows, key_vpn, key_asid)
        mm = mtlb_match(dm, "insn_mtlb", key_vpn, key_asid)
        # INVTLB op 2-4 visit only the STLB sets that hold a valid entry
        if W:
            occupied = Signal(S, name="sets_occupied")
            dm.d.comb += occupied.eq(_or_all(dm, e_way, S))
            sweep_todo = Signal(S, name="sweep_todo")     # occupied sets not yet read
            sweep_rows = Signal(name="sweep_rows")        # cur_set is one of them
            sweep_from = Signal(S, name="sweep_from")
            sweep_set = first_one(dm, sweep_from, "sweep_set")
        key_set_src = self._set_of(dm, src_vppn, "srch_set") if W else None
        key_set_va = self._set_of(dm, self.insn_va[13:g.valen], "inv_set") if W else None

        # ---- what an instruction changes, gathered here and applied once below ------------
        # one STLB set changes per cycle: written (TLBWR, TLBFILL) or cleared, in some ways
        stlb_we = Signal(max(1, W), name="stlb_we")
        stlb_waddr = Signal(max(1, set_bits), name="stlb_waddr")
        # an MTLB write (TLBWR, TLBFILL): the entry, and the one-hot made from it below
        mtlb_write = Signal(name="mtlb_write")
        mtlb_waddr = Signal(range(max(2, M)), name="mtlb_waddr")
        mtlb_we = Signal(M, name="mtlb_we")
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

        done = self.insn_done
        with m.FSM(name="insn_fsm") as fsm:
            with m.State("IDLE"):
                m.d.comb += self.insn_ready.eq(1)
                with m.If(self.insn_valid):
                    with m.Switch(self.insn_op):
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
                                    m.d.comb += self.insn_illegal.eq(1)
                        with m.Case(InsnOp.TLBFILL):
                            m.next = "FILL"
                        with m.Case(InsnOp.ERTN):
                            m.d.comb += done.eq(1)
                            m.d.sync += istlbr.eq(0)
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
                            with m.If(self.insn_inv_op > 6):
                                m.d.comb += [done.eq(1), self.insn_illegal.eq(1)]
                            with m.Elif(self.insn_inv_op >= 5):
                                if W:
                                    m.d.comb += rd_set.eq(key_set_va)
                                m.next = "PAGE"
                            with m.Elif(self.insn_inv_op < 2):
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
                # the slot was found in the accept cycle (place(), registered)
                m.d.comb += done.eq(1)
                if g.tlbfill_ne == "ignore":
                    m.d.comb += src_e.eq(1)
                with m.If(~ps_listed):
                    m.d.comb += self.insn_illegal.eq(1)
                with m.Elif(to_stlb):
                    if W:
                        m.d.comb += [stlb_we.eq(Const(1, W) << fill_way),
                                     stlb_waddr.eq(fill_set),
                                     step_policy_stlb.eq(stlb_full),
                                     self.insn_slot.eq(Cat(fill_set[:set_bits], fill_way))]
                with m.Else():
                    m.d.comb += [mtlb_write.eq(1), mtlb_waddr.eq(fill_m),
                                 step_policy_mtlb.eq(mtlb_full),
                                 self.insn_slot.eq(g.stlb_entries + fill_m)]
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
                with m.If(s_hit | m_hit):
                    m.d.sync += [csr["TLBIDX"].Index.eq(slot), csr["TLBIDX"].NE.eq(0)]
                with m.Else():
                    m.d.sync += csr["TLBIDX"].NE.eq(1)
                with m.If(multi):
                    m.d.sync += multi_hit.eq(1)
                m.next = "IDLE"

            with m.State("RD"):
                m.d.comb += done.eq(1)
                entry = Signal(mtlb_entry_layout(g), name="rd_entry")
                present = Signal(name="rd_present")
                m_sel = Signal(mtlb_entry_layout(g), name="rd_mtlb_entry")
                m.d.comb += [m_sel.tag.eq(Array(t.as_value() for t in mtlb_tags)[idx_m]),
                             m_sel.ps.eq(rd_data.ps), m_sel.lo0.eq(rd_data.lo0),
                             m_sel.lo1.eq(rd_data.lo1)]
                m_e = bit_at(mtlb_e, idx_m)
                if W:
                    row = stlb_entry_layout(g)(Array(r.as_value() for r in rows)[idx_way])
                    s_e = bit_at(cur_set_e, idx_way)
                    with m.If(in_stlb):
                        m.d.comb += [entry.tag.eq(row.tag), entry.lo0.eq(row.lo0),
                                     entry.lo1.eq(row.lo1), entry.ps.eq(self.stlbps),
                                     present.eq(s_e)]
                    with m.Else():
                        m.d.comb += [entry.eq(m_sel), present.eq(m_e & in_mtlb)]
                else:
                    m.d.comb += [entry.eq(m_sel), present.eq(m_e & in_mtlb)]
                with m.If(present):
                    m.d.sync += [csr["TLBEHI"].VPPN.eq(entry.tag.vppn),
                                 csr["TLBIDX"].PS.eq(entry.ps), csr["TLBIDX"].NE.eq(0),
                                 csr["ASID"].ASID.eq(entry.tag.asid)]
                    m.d.sync += self._elo_from_half(csr["TLBELO0"], entry.lo0, entry.tag.g)
                    m.d.sync += self._elo_from_half(csr["TLBELO1"], entry.lo1, entry.tag.g)
                with m.Else():
                    m.d.sync += [csr["TLBEHI"].as_value().eq(0), csr["TLBELO0"].as_value().eq(0),
                                 csr["TLBELO1"].as_value().eq(0), csr["TLBIDX"].PS.eq(0),
                                 csr["TLBIDX"].NE.eq(1)]
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

        # ---- apply the changes -----------------------------------------------------------
        if W:
            for w in range(W):
                m.d.comb += [wports[w].addr.eq(stlb_waddr), wports[w].data.eq(new_stlb),
                             wports[w].en.eq(stlb_we[w])]
                # one E bit at a time, addressed: a case on the set in the Verilog, which
                # simulates as a branch where a 256-bit one-hot mask costs a pass over it
                with m.If(clear_all):
                    m.d.sync += e_way[w].eq(0)
                with m.Elif(stlb_we[w] | clear_way[w]):
                    m.d.sync += e_way[w].bit_select(stlb_waddr, 1).eq(stlb_we[w] & src_e)
            with m.If(step_policy_stlb):
                m.d.sync += rr_stlb.eq(Mux(rr_stlb == W - 1, 0, rr_stlb + 1))
        m.d.comb += mtlb_we.eq(Mux(mtlb_write, decoder(m, mtlb_waddr, M, "mtlb_we_dec"), 0))
        for i in range(M):
            with m.If(mtlb_we[i]):
                m.d.sync += [mtlb_tags[i].eq(new_entry.tag), mtlb_masks[i].eq(new_mask)]
        m.d.comb += [mtlb_wport.en.eq(mtlb_write), mtlb_wport.addr.eq(mtlb_waddr),
                     mtlb_wport.data.ps.eq(new_entry.ps), mtlb_wport.data.lo0.eq(new_entry.lo0),
                     mtlb_wport.data.lo1.eq(new_entry.lo1)]
        m.d.sync += mtlb_e.eq((mtlb_e & ~mtlb_clear & ~mtlb_we) | Mux(src_e, mtlb_we, 0))
        with m.If(step_policy_mtlb):
            m.d.sync += rr_mtlb.eq(Mux(rr_mtlb == M - 1, 0, rr_mtlb + 1))
        if g.policy == "lfsr":
            with m.If(step_policy_stlb | step_policy_mtlb):
                m.d.sync += lfsr.eq(lfsr_next)
