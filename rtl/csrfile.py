"""The TLB unit's CSRs: registers, the read mux, the write masks, and the writes the
translation ports and the instruction unit request, in priority order."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from loongtlb.sw_model.csr import CSR, CSR_NAMES, sign_extended, write_mask
from loongtlb.sw_model.geometry import Geometry

from .layouts import Exc, csr_layout

__all__ = ["CSRFile", "exception_signature", "insn_csr_signature", "read_result_signature",
           "regs_signature", "search_result_signature", "values_signature"]


def regs_signature(geom: Geometry) -> wiring.Signature:
    """Every CSR register (PRCFG3, a constant, aside), each a signal of its own with its
    fields at their positions, as the CSR file drives them."""
    members = {name: Out(csr_layout(geom, name)) for name in CSR_NAMES if name != "PRCFG3"}
    members["STLBPS"] = Out(csr_layout(geom, "STLBPS"), init={"PS": geom.stlb_page_shift})
    return wiring.Signature(members)


def values_signature(geom: Geometry) -> wiring.Signature:
    """What csrrd reads of each CSR, a signal each, in CSR_NAMES order."""
    return wiring.Signature({name: Out(geom.grlen) for name in CSR_NAMES})


def exception_signature(geom: Geometry) -> wiring.Signature:
    """A translation's exception taking effect (D13), as the translation port requests it:
    ``exc`` TLBR or a page exception, ``va`` the address."""
    return wiring.Signature({"valid": Out(1), "exc": Out(Exc), "va": Out(geom.grlen)})


def search_result_signature(geom: Geometry) -> wiring.Signature:
    """TLBSRCH's result (D6): whether an entry matched (``found``) and its ``index``."""
    return wiring.Signature({"found": Out(1), "index": Out(geom.index_bits)})


def read_result_signature(geom: Geometry) -> wiring.Signature:
    """TLBRD's result (D8): whether the slot holds an entry (``present``), and what TLBRD
    writes of it into TLBEHI (``vppn``), TLBIDX.PS (``ps``), ASID.ASID (``asid``) and
    TLBELO0/1 (``elo0``, ``elo1``, G in both)."""
    return wiring.Signature({
        "present": Out(1), "vppn": Out(geom.vppn_bits), "ps": Out(6),
        "asid": Out(geom.asid_bits), "elo0": Out(csr_layout(geom, "TLBELO0")),
        "elo1": Out(csr_layout(geom, "TLBELO1")),
    })


def insn_csr_signature(geom: Geometry) -> wiring.Signature:
    """The instruction unit's CSR writes: ERTN; TLBSRCH's result (``srch``); TLBRD's
    (``rd``: with an entry, written into TLBEHI, TLBELO0/1, TLBIDX.PS and ASID.ASID; else
    those cleared, D8)."""
    return wiring.Signature({
        "ertn": Out(1),
        "srch": Out(1), "srch_result": Out(search_result_signature(geom)),
        "rd": Out(1), "rd_result": Out(read_result_signature(geom)),
    })


class CSRFile(wiring.Component):
    """The CSRs of interfaces.md section 2, one register each, fields at their
    architectural positions. Reads: 0 cycles; writes: at the clock edge.

    Writes that meet in one cycle take effect in this order, the last winning: the CSR port
    (``csr_we``; D17 masks, D19 for STLBPS), the translation ports' exceptions (the
    highest-numbered first, so port 0 wins), the instruction unit.

    A translation's exception (``exc``) is latched in the cycle it is requested and written
    at the edge that ends the next (:data:`LATENCY` ``exception``), so that the checks that
    decide it and the CSRs' write paths are a clock cycle each; ``busy`` is high in that
    cycle when there is an exception to write, and the CSR port and the instruction unit
    must wait.

    Members
    -------
    csr_addr, csr_rdata, csr_we, csr_wdata
        The CSR port of :class:`~rtl.unit.TLBUnit`.
    exc : In(exception_signature).array(lookup ports)
        The translation ports' exceptions (D13).
    insn : In(insn_csr_signature)
        The instruction unit's writes.
    regs : Out(regs_signature)
        Every register.
    busy : Out(1)
        A translation's exception CSR writes are pending (they land at the edge that ends
        this cycle).
    values : Out(values_signature)
        What csrrd reads of each CSR (D17: constants and sign extension included).
    """

    #: cycles to the edge where a write lands (``exception``: counted from the request)
    LATENCY = {"read": 0, "write": 1, "exception": 2}

    def __init__(self, geom: Geometry):
        self.geom = geom
        super().__init__({
            "csr_addr": In(14), "csr_rdata": Out(geom.grlen),
            "csr_we": In(1), "csr_wdata": In(geom.grlen),
            "exc": In(exception_signature(geom)).array(geom.lookup_ports),
            "insn": In(insn_csr_signature(geom)),
            "regs": Out(regs_signature(geom)),
            "values": Out(values_signature(geom)), "busy": Out(1),
        })

    def _value(self, name):
        g = self.geom
        if name == "PRCFG3":
            return Const(g.prcfg3, g.grlen)
        value = getattr(self.regs, name).as_value()
        if name == "ASID":
            value = value | (g.asid_bits << 16)
        if sign_extended(g, name):
            sext = ((1 << g.grlen) - 1) ^ ((1 << g.valen) - 1)
            value = value | Mux(value[g.valen - 1], sext, 0)
        return value

    def elaborate(self, platform):
        g = self.geom
        m = Module()
        csr = {name: getattr(self.regs, name) for name in CSR_NAMES if name != "PRCFG3"}
        for name in CSR_NAMES:
            m.d.comb += getattr(self.values, name).eq(self._value(name))
        # the read mux in a module of its own: the simulator then re-evaluates only this
        # when csr_addr changes, not the whole unit
        m.submodules.read = rd = Module()
        with rd.Switch(self.csr_addr):
            for name in CSR_NAMES:
                with rd.Case(CSR[name]):
                    rd.d.comb += self.csr_rdata.eq(getattr(self.values, name))

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

        # D13: a translation's exception, latched, then written
        pending = [exception_signature(g).create(path=(f"exc_pending{p}",))
                   for p in range(len(self.exc))]
        for req, latched in zip(self.exc, pending, strict=True):
            m.d.sync += [latched.valid.eq(req.valid), latched.exc.eq(req.exc),
                         latched.va.eq(req.va)]
        m.d.comb += self.busy.eq(Cat(req.valid & (req.exc != Exc.NONE)
                                     for req in pending).any())
        for req in reversed(pending):
            vpn = req.va[13:g.valen]
            with m.If(req.valid):
                with m.If(req.exc == Exc.TLBR):
                    m.d.sync += [csr["TLBRBADV"].VA.eq(req.va), csr["TLBREHI"].VPPN.eq(vpn),
                                 csr["TLBRERA"].IsTLBR.eq(1)]
                with m.Elif(req.exc != Exc.NONE):
                    m.d.sync += [csr["BADV"].VA.eq(req.va), csr["TLBEHI"].VPPN.eq(vpn),
                                 csr["ESTAT"].Ecode.eq(req.exc.as_value() - 1),
                                 csr["ESTAT"].EsubCode.eq(0)]

        # the instruction unit's
        ins = self.insn
        with m.If(ins.ertn):
            m.d.sync += csr["TLBRERA"].IsTLBR.eq(0)
        with m.If(ins.srch):
            with m.If(ins.srch_result.found):
                m.d.sync += [csr["TLBIDX"].Index.eq(ins.srch_result.index),
                             csr["TLBIDX"].NE.eq(0)]
            with m.Else():
                m.d.sync += csr["TLBIDX"].NE.eq(1)
        with m.If(ins.rd):
            rd = ins.rd_result
            with m.If(rd.present):
                m.d.sync += [csr["TLBEHI"].VPPN.eq(rd.vppn), csr["TLBIDX"].PS.eq(rd.ps),
                             csr["TLBIDX"].NE.eq(0), csr["ASID"].ASID.eq(rd.asid),
                             csr["TLBELO0"].eq(rd.elo0), csr["TLBELO1"].eq(rd.elo1)]
            with m.Else():
                m.d.sync += [csr["TLBEHI"].as_value().eq(0), csr["TLBELO0"].as_value().eq(0),
                             csr["TLBELO1"].as_value().eq(0), csr["TLBIDX"].PS.eq(0),
                             csr["TLBIDX"].NE.eq(1)]
        return m
