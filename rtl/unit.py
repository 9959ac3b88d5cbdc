"""The TLB unit: the blocks of ``rtl`` connected. Everything follows ``decisions.md`` D1-D21;
the reference model in ``sw_model.tlb`` is the independent implementation it is checked
against."""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from loongtlb.sw_model.csr import CSR_NAMES
from loongtlb.sw_model.geometry import Geometry

from .csrfile import CSRFile
from .insn import InstructionUnit, Sweep
from .layouts import InsnOp, mtlb_entry_layout, tag_layout
from .lookup import LookupPort, LookupSignature
from .operands import EntryRead, EntrySource, IndexDecode, InstructionMatch, SearchResult
from .pagesize import PageSize
from .replacement import Replacement
from .storage import MTLB, STLB
from .util import wires

__all__ = ["TLBUnit", "LookupSignature", "ObservationSignature", "BLOCKS"]

#: every block and its latency table (cycles; the instruction unit's per instruction)
BLOCKS = (PageSize, CSRFile, STLB, MTLB, Replacement, LookupPort, EntrySource, IndexDecode,
          InstructionMatch, SearchResult, EntryRead, Sweep, InstructionUnit)


class ObservationSignature(wiring.Signature):
    """What a checker observes of the unit's state, beside its ports: ``e_bits``, every
    slot's E bit (the STLB's set by set, then the MTLB's: where each is,
    ``Geometry.e_bit_position``); ``csr``, what csrrd reads of every CSR. For
    simulation and formal checks; synthesis leaves it out.

    With ``contents``, for formal checks: ``entries``, every slot's entry in Index order (an
    STLB slot's ``ps`` is 0: the STLB has none), ``cares``, the VPPN bits each MTLB entry
    compares, ``policy``, the replacement's state (:class:`~rtl.replacement.Replacement`),
    ``lookup_multi``, per port, a lookup in its response's cycle that matched several
    entries (what raises the sticky flag, D7), ``insn_busy``, an instruction part-way
    (accepted, not past its ``done`` cycle), ``stlb_occupied``, the STLB sets the unit
    holds as having a valid entry (what INVTLB op 2-4 visits), and ``mtlb_tag_copies``,
    the MTLB's tags as the copy TLBRD reads holds them.
    """

    def __init__(self, geom: Geometry, contents: bool = False):
        members = {
            "e_bits": Out(geom.e_bits_width),
            "csr": Out(wiring.Signature({name: Out(geom.grlen) for name in CSR_NAMES})),
        }
        if contents:
            members.update(
                entries=Out(data.ArrayLayout(mtlb_entry_layout(geom), geom.total_entries)),
                cares=Out(data.ArrayLayout(geom.vppn_bits, geom.mtlb_entries)),
                policy=Out(32), lookup_multi=Out(geom.lookup_ports), insn_busy=Out(1),
                stlb_occupied=Out(max(1, geom.stlb_sets)),
                mtlb_tag_copies=Out(data.ArrayLayout(tag_layout(geom), geom.mtlb_entries)))
        super().__init__(members)


class TLBUnit(wiring.Component):
    """A LoongArch TLB for one geometry: the :class:`~rtl.csrfile.CSRFile`, the
    :class:`~rtl.storage.STLB` (with an STLB) and :class:`~rtl.storage.MTLB`, the
    :class:`~rtl.replacement.Replacement`, one :class:`~rtl.lookup.LookupPort` per
    translation port and the :class:`~rtl.insn.InstructionUnit`.

    Ports
    -----
    csr_addr, csr_rdata : In(14), Out(GRLEN)
        Combinational CSR read (interfaces.md section 2; unknown numbers read 0).
    csr_we, csr_wdata : In(1), In(GRLEN)
        CSR write, taking effect at the clock edge (D17, D19).
    csr_ready : Out(1)
        Low in the cycle after a response with ``effect`` and an exception, whose CSR
        writes land at the edge that ends it: CSR reads and writes wait for it, and the
        instruction port is not ready.
    insn_valid, insn_ready, insn_op, insn_inv_op, insn_asid, insn_va : handshake and operands
        An instruction is accepted in a cycle with ``insn_valid & insn_ready``; operands
        must hold until ``insn_done``. Not ready in the ``done`` cycle of the last one, nor
        while ``csr_ready`` is low.
    insn_done, insn_illegal, insn_slot : Out
        ``insn_done`` is high in the instruction's last cycle, with ``insn_illegal`` (D15,
        D19) and, for TLBFILL, ``insn_slot`` (the Index written). Its CSR and TLB updates
        take effect at the clock edge that ends that cycle. Cycles: ``InstructionUnit.CYCLES``.
        ``multi_hit`` shows a TLBSRCH's multi-hit after that edge.
    multi_hit : Out(1)
        The sticky flag of D7.
    lookup : Out(LookupSignature).array(lookup_ports)
        Translation ports. A lookup uses CRMD.PLV, ASID.ASID, MISC.DWPL and STLBPS; when
        two ports take effect in one cycle, the lowest-numbered port's CSR writes win. An
        exception's CSR writes land a cycle after the response's (``csr_ready``); the
        sticky multi-hit flag is set at the response's edge.
    obs : Out(ObservationSignature), with ``observe=True`` (or ``"contents"``)
        The state a checker compares (with ``"contents"``, every entry too).

    Lookups, CSR writes and instructions are meant not to overlap in time; when they do,
    an instruction's CSR writes win over a lookup's, and a lookup's over the CSR port's.
    """

    def __init__(self, geom: Geometry, *, observe: bool | str = False):
        self.geom = geom
        self.contents = observe == "contents"
        members = {
            "csr_addr": In(14), "csr_rdata": Out(geom.grlen),
            "csr_we": In(1), "csr_wdata": In(geom.grlen), "csr_ready": Out(1),
            "insn_valid": In(1), "insn_ready": Out(1), "insn_op": In(InsnOp),
            "insn_inv_op": In(5), "insn_asid": In(10), "insn_va": In(geom.grlen),
            "insn_done": Out(1), "insn_illegal": Out(1),
            "insn_slot": Out(geom.index_bits),
            "multi_hit": Out(1),
            "lookup": Out(LookupSignature(geom)).array(geom.lookup_ports),
        }
        if observe:
            members["obs"] = Out(ObservationSignature(geom, self.contents))
        super().__init__(members)

    def elaborate(self, platform):
        g = self.geom
        n = g.lookup_ports
        m = Module()
        csr = m.submodules.csr = CSRFile(g)
        mtlb = m.submodules.mtlb = MTLB(g, reads=n + 1, contents=self.contents)
        repl = m.submodules.replacement = Replacement(g, state=self.contents)
        iu = m.submodules.insn = InstructionUnit(g)
        if g.has_stlb:
            stlb = m.submodules.stlb = STLB(g, reads=n + 1,
                                            observe="obs" in self.signature.members,
                                            contents=self.contents)

        w = wires(m, "csr_port")
        for name in ("csr_addr", "csr_we", "csr_wdata"):
            w.d.comb += getattr(csr, name).eq(getattr(self, name))
        w.d.comb += [self.csr_rdata.eq(csr.csr_rdata), self.csr_ready.eq(~csr.busy)]

        ports = [LookupPort(g) for _ in range(n)]
        # Ports are added last to first, as when the order of their statements set the
        # priority of their CSR writes (the CSR file sets it now: port 0 wins)
        for p in reversed(range(n)):
            lp = m.submodules[f"lookup{p}"] = ports[p]
            wiring.connect(wires(m, f"lookup{p}_port"), wiring.flipped(self.lookup[p]), lp.port)
            wiring.connect(wires(m, f"lookup{p}_exc"), lp.exc, csr.exc[p])
            wiring.connect(wires(m, f"lookup{p}_mtlb"), lp.mtlb, mtlb.read[p])
            if g.has_stlb:
                wiring.connect(wires(m, f"lookup{p}_stlb"), lp.stlb, stlb.read[p])
        src, mt = self._operands(m, iu, csr, mtlb, stlb if g.has_stlb else None)
        wiring.connect(wires(m, "csr_regs"), csr.regs, src.csr, *(lp.csr for lp in ports))
        wiring.connect(wires(m, "mtlb"), mtlb.regs, mt.mtlb_regs, *(lp.mtlb_regs for lp in ports))
        if g.has_stlb:
            w = wires(m, "stlb_care")
            w.d.comb += stlb.stlbps.eq(csr.regs.STLBPS.PS)
            for reader in (mt, *ports):
                w.d.comb += reader.stlb_care.eq(stlb.care)

        # the instruction unit
        w = wires(m, "insn_port")
        for name in ("valid", "op", "inv_op", "asid", "va"):
            w.d.comb += getattr(iu.insn, name).eq(getattr(self, f"insn_{name}"))
        for name in ("ready", "done", "illegal", "slot"):
            w.d.comb += getattr(self, f"insn_{name}").eq(getattr(iu.insn, name))
        wiring.connect(wires(m, "insn_csr"), iu.csr_write, csr.insn)
        wires(m, "insn_stall").d.comb += iu.stall.eq(csr.busy)
        wiring.connect(wires(m, "insn_mtlb_write"), iu.mtlb_write, mtlb.write)
        wiring.connect(wires(m, "victim"), iu.victim, repl.choice)
        wires(m, "mtlb_fill").d.comb += repl.mtlb_e.eq(mtlb.regs.e)
        if g.has_stlb:
            wiring.connect(wires(m, "insn_stlb"), iu.stlb, stlb.read[n])
            wiring.connect(wires(m, "insn_stlb_write"), iu.stlb_write, stlb.write)
            wires(m, "stlb_fill").d.comb += [repl.stlb_e.eq(iu.set_e),     # TLBFILL's set
                                          iu.stlb_occupied.eq(stlb.occupied)]

        # D7: the sticky multi-hit flag
        multi_hit = Signal()
        m.d.comb += self.multi_hit.eq(multi_hit)
        for source in (iu.multi, *(lp.multi for lp in ports)):
            with m.If(source):
                m.d.sync += multi_hit.eq(1)

        if "obs" in self.signature.members:
            self._observe(wires(m, "obs"), csr, stlb if g.has_stlb else None, mtlb, repl, iu,
                          ports)
        return m

    def _operands(self, m, iu, csr, mtlb, stlb):
        """The blocks the instruction unit's states read (:mod:`rtl.operands`), connected to
        its ``ops``, the banks and the instruction port; the CSRs and the MTLB's registers
        reach EntrySource and InstructionMatch with the lookup ports' (returned for that)."""
        g, o, n = self.geom, iu.ops, self.geom.lookup_ports
        src = m.submodules.insn_entry = EntrySource(g)
        ix = m.submodules.insn_index = IndexDecode(g)
        mt = m.submodules.insn_match = InstructionMatch(g)
        sr = m.submodules.insn_search = SearchResult(g)
        rd = m.submodules.insn_read = EntryRead(g)
        wires(m, "insn_entry").d.comb += [
            o.entry.eq(src.entry), o.e.eq(src.e), o.to_stlb.eq(src.to_stlb),
            o.compare.eq(src.compare), o.ps_listed.eq(src.ps_listed), src.fill.eq(o.fill)]
        w = wires(m, "insn_index")
        w.d.comb += [ix.index.eq(csr.regs.TLBIDX.Index), mtlb.read[n].addr.eq(ix.decoded.entry),
                     mtlb.tag_read.addr.eq(ix.decoded.entry)]
        wiring.connect(w, ix.decoded, o.index, rd.index)
        w = wires(m, "insn_match")
        w.d.comb += [mt.accept.eq(o.accept), mt.op.eq(self.insn_op), mt.va.eq(self.insn_va),
                     mt.asid.eq(self.insn_asid), mt.inv_op.eq(self.insn_inv_op),
                     mt.src_vppn.eq(src.entry.tag.vppn), mt.cur_asid.eq(csr.regs.ASID.ASID)]
        names = ["clr_mtlb", "inv_mtlb", "page_mtlb"]
        if stlb is not None:
            names += ["clr_stlb", "inv_stlb", "page_stlb"]
            rows = stlb.read[n].rows
            w.d.comb += [mt.stlb_tags[i].eq(rows[i].tag) for i in range(g.stlb_ways)]
            # the STLB sets of the VPPN TLBWR/TLBFILL write (TLBFILL's and TLBSRCH's set)
            # and of INVTLB's VA (op 5/6)
            for name, vpn in (("src_set", src.entry.tag.vppn),
                              ("inv_set", self.insn_va[13:g.valen])):
                sets = m.submodules[f"insn_{name}"] = PageSize(g, set=True)
                wires(m, f"insn_{name}").d.comb += [
                    sets.ps.eq(csr.regs.STLBPS.PS), sets.vpn.eq(vpn),
                    getattr(o, name).eq(sets.set)]
        wires(m, "insn_match_out").d.comb += [getattr(o, k).eq(getattr(mt, k)) for k in names]
        ws = wires(m, "insn_search")
        wiring.connect(ws, sr.result, o.search)
        ws.d.comb += [sr.capture.eq(o.capture), sr.mtlb_hits.eq(mt.mtlb_hits),
                      o.multi.eq(sr.multi)]
        wr = wires(m, "insn_read")
        wiring.connect(wr, rd.result, o.read)
        wr.d.comb += [rd.mtlb_data.eq(mtlb.read[n].data), rd.mtlb_tag.eq(mtlb.tag_read.tag),
                      rd.mtlb_e.eq(mtlb.regs.e)]
        if stlb is not None:
            ws.d.comb += [sr.stlb_hits.eq(mt.stlb_hits), sr.set.eq(o.cur_set),
                          sr.stlb_e.eq(o.set_e)]
            wr.d.comb += [rd.stlbps.eq(csr.regs.STLBPS.PS), rd.stlb_e.eq(o.set_e),
                          rd.stlb_rows.eq(rows)]
        return src, mt

    def _observe(self, w, csr, stlb, mtlb, repl, iu, ports):
        """The observation port: E bits and CSRs; with ``contents``, the entries, the MTLB's
        compare bits, the replacement's state, each port's multi-hit, the instruction unit's
        progress."""
        g, obs = self.geom, self.obs
        e_bits = [stlb.e_bits] if stlb is not None else []
        w.d.comb += obs.e_bits.eq(Cat(*e_bits, mtlb.regs.e))
        wiring.connect(w, csr.values, wiring.flipped(obs.csr))
        if not self.contents:
            return
        for i in range(g.stlb_entries):
            row = stlb.contents[i]
            w.d.comb += [obs.entries[i].tag.eq(row.tag), obs.entries[i].lo0.eq(row.lo0),
                         obs.entries[i].lo1.eq(row.lo1)]
        for i in range(g.mtlb_entries):
            w.d.comb += [obs.entries[g.stlb_entries + i].eq(mtlb.contents[i]),
                         obs.cares[i].eq(mtlb.regs.cares[i]),
                         obs.mtlb_tag_copies[i].eq(mtlb.tag_copies[i])]
        w.d.comb += [obs.policy.eq(repl.state), obs.insn_busy.eq(iu.busy),
                     obs.lookup_multi.eq(Cat(lp.multi for lp in ports))]
        if stlb is not None:
            w.d.comb += obs.stlb_occupied.eq(stlb.occupied)
