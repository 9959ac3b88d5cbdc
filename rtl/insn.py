"""The instruction unit: TLBSRCH, TLBRD, TLBWR, TLBFILL, TLBCLR, TLBFLUSH, INVTLB, ERTN."""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from loongtlb.sw_model.geometry import Geometry

from .csrfile import insn_csr_signature
from .layouts import InsnOp
from .operands import operands_signature
from .replacement import victim_signature
from .storage import mtlb_write_signature, stlb_read_signature, stlb_write_signature
from .util import lowest_one_wide, onehot_index, wires

__all__ = ["InsnSignature", "InstructionUnit", "Sweep"]


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
    ops : Out(operands_signature)
        What the states read (the blocks of :mod:`rtl.operands`), and what they tell them.
    csr_write : Out(insn_csr_signature)
        Its CSR writes (ERTN, TLBSRCH, TLBRD).
    stlb, stlb_write, stlb_occupied : the STLB (with an STLB)
        One set read (its address, and the E bits read with the rows), the write port, the
        sets holding an entry.
    set_e : Out(ways)
        The E bits of the set whose rows were out a cycle before: in TLBFILL's FILL state,
        of the set it writes (for :class:`~rtl.replacement.Replacement`).
    mtlb_write : Out(mtlb_write_signature)
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
            "insn": Out(InsnSignature(geom)), "ops": Out(operands_signature(geom)),
            "csr_write": Out(insn_csr_signature(geom)),
            "mtlb_write": Out(mtlb_write_signature(geom)),
            "victim": Out(victim_signature(geom)), "multi": Out(1), "stall": In(1),
            "busy": Out(1),
        }
        if geom.has_stlb:
            members.update(
                stlb=Out(stlb_read_signature(geom)),
                stlb_write=Out(stlb_write_signature(geom)), stlb_occupied=In(geom.stlb_sets),
                set_e=Out(geom.stlb_ways))
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
                m.d.comb += c.ops.capture.eq(1)
                m.next = "SRCH_HIT"
            with m.State("SRCH_HIT"):
                m.d.sync += [c.done.eq(1), c.cw.srch.eq(1), self.multi.eq(c.ops.multi)]
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
                    c.clear_stlb_set(c.cur_set, c.ops.clr_stlb)
                m.next = "IDLE"
            with m.State("PAGE"):
                m.d.sync += [c.done.eq(1), c.mw.clear.eq(c.ops.page_mtlb)]
                if g.has_stlb:
                    c.clear_stlb_set(c.cur_set, c.ops.page_stlb)
                m.next = "IDLE"
            with m.State("SWEEP"):
                self._sweep(m, c)
        self._apply(m, c, fsm)
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") | self.insn.done)
        return m

    def _decode(self, m) -> SimpleNamespace:
        """What every state reads (``ops``: the blocks of :mod:`rtl.operands`) and drives."""
        g = self.geom
        W = g.stlb_ways
        o = self.ops
        c = SimpleNamespace(req=self.insn, ops=o, index=o.index)
        # what the states decide (done, illegal, slot) they assign in ``sync``: registered on
        # the way out, and 0 in a cycle that decides nothing
        c.done, c.illegal, c.slot = self.insn.done, self.insn.illegal, self.insn.slot
        m.d.sync += [c.done.eq(0), c.illegal.eq(0), c.slot.eq(0), self.multi.eq(0)]
        # Not ready in the done cycle of the last instruction (its effects land at its end).
        # The accept is an expression, not a signal of this module that its own statements
        # read (a simulator would evaluate them all again once it had changed).
        ready = ~self.insn.done & ~self.stall
        c.accept = c.req.valid & ready
        m.d.comb += [c.req.ready.eq(ready), o.accept.eq(c.accept)]
        # the set read in this cycle (the STLB's read address) and the set whose rows are
        # out, with its E bits: read with the rows (``row_e``) and a cycle later (``set_e``)
        c.rd_set = self.stlb.addr if W else Signal(1, name="rd_set")
        c.cur_set = o.cur_set if W else Signal(1, name="cur_set")
        m.d.sync += c.cur_set.eq(c.rd_set)
        if W:
            c.row_e, c.set_e = self.stlb.e, self.set_e
            m.d.sync += c.set_e.eq(c.row_e)
            m.d.comb += o.set_e.eq(c.set_e)
            c.sweep = m.submodules.sweep = Sweep(g)
            wires(m, "sweep").d.comb += c.sweep.occupied.eq(self.stlb_occupied)
        # what an instruction changes goes to the banks and the CSRs a cycle after it is
        # decided: one STLB set per cycle, written (TLBWR, TLBFILL) or cleared in some ways,
        # with all its E bits (those read with its rows, changed); one MTLB entry written,
        # any cleared; TLBSRCH's and TLBRD's results, which the CSRs take in their last state
        c.mw = _registered(m, self.mtlb_write)
        c.cw = _registered(m, self.csr_write)
        _register(m, c.cw.srch_result, o.search)
        _register(m, c.cw.rd_result, o.read)
        if W:
            c.sw = _registered(m, self.stlb_write)

        def clear_stlb_set(set_, ways):
            m.d.sync += [c.sw.addr.eq(set_), c.sw.e_we.eq(1), c.sw.e.eq(c.row_e & ~ways)]

        def write_stlb_way(set_, we):
            """Write the new entry to the ways ``we`` (one) of ``set_``, whose rows are out."""
            m.d.sync += [c.sw.we.eq(we), c.sw.addr.eq(set_), c.sw.e_we.eq(1),
                         c.sw.e.eq((c.row_e & ~we) | Mux(o.e, we, 0))]
        c.clear_stlb_set, c.write_stlb_way = clear_stlb_set, write_stlb_way
        return c

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
                        m.d.comb += c.rd_set.eq(c.ops.src_set)
                    m.next = "FILL_VICTIM"
                with m.Case(InsnOp.ERTN):
                    m.d.sync += [done.eq(1), c.cw.ertn.eq(1)]
                with m.Case(InsnOp.TLBFLUSH):
                    m.d.sync += done.eq(1)
                    if W:
                        with m.If(c.index.in_stlb):
                            c.clear_stlb_set(c.index.set, Const(-1, W))
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
                        m.d.sync += c.mw.clear.eq(c.ops.clr_mtlb)
                with m.Case(InsnOp.TLBSRCH):
                    if W:
                        m.d.comb += c.rd_set.eq(c.ops.src_set)
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
            with m.If(c.ops.ps_listed):
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
                m.d.comb += c.rd_set.eq(c.ops.inv_set)
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
        m.d.comb += c.ops.fill.eq(1)
        with m.If(~c.ops.ps_listed):
            m.d.sync += c.illegal.eq(1)
        v = self.victim
        with m.Elif(c.ops.to_stlb):
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
                c.clear_stlb_set(c.cur_set, c.ops.inv_stlb)
            m.d.comb += c.rd_set.eq(c.sweep.set)
            last = c.sweep.last
        with m.If(last):
            m.d.sync += [c.done.eq(1), c.mw.clear.eq(c.ops.inv_mtlb)]
            m.next = "IDLE"

    def _apply(self, m, c, fsm) -> None:
        """The entry TLBWR and TLBFILL write, to whichever bank is written."""
        new = c.ops.entry
        if self.geom.has_stlb:
            m.d.comb += c.sweep.active.eq(fsm.ongoing("SWEEP"))       # by the state alone
            m.d.sync += [c.sw.data.tag.eq(new.tag),
                         c.sw.data.lo0.eq(new.lo0), c.sw.data.lo1.eq(new.lo1)]
        m.d.sync += [c.mw.entry.eq(new), c.mw.mask.eq(c.ops.compare), c.mw.e.eq(c.ops.e)]


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
