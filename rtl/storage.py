"""The two banks' storage: the STLB (set associative, one page size) and the MTLB (fully
associative, a page size per entry), with their E bits, read and write ports.

Neither bank matches: a :class:`~rtl.match.Match` of the reader's compares the tags a bank
puts out, with the compare bits (``care``) the bank keeps beside them.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from loongtlb.sw_model.geometry import Geometry

from .layouts import (mask_groups, mtlb_data_layout, mtlb_entry_layout,
                      stlb_entry_layout, tag_layout)
from .match import care_of
from .pagesize import PageSize
from .util import decoder, delayed

__all__ = ["STLB", "MTLB", "stlb_read_signature", "stlb_write_signature",
           "mtlb_read_signature", "mtlb_tag_read_signature", "mtlb_regs_signature",
           "mtlb_write_signature"]


def _set_width(geom: Geometry) -> int:
    return max(1, geom.set_bits)


# Signatures as the reader or writer sees them (the bank takes them flipped).

def stlb_read_signature(geom: Geometry) -> wiring.Signature:
    """Read one set: ``rows`` (every way's entry at ``addr``) and ``e`` (its E bits, one per
    way) a cycle after ``addr``."""
    return wiring.Signature({
        "addr": Out(_set_width(geom)),
        "rows": In(data.ArrayLayout(stlb_entry_layout(geom), max(1, geom.stlb_ways))),
        "e": In(max(1, geom.stlb_ways)),
    })


def stlb_write_signature(geom: Geometry) -> wiring.Signature:
    """Write the ways ``we`` of set ``addr`` with ``data``; set the E bits of set ``addr`` to
    ``e`` (``e_we``: all of them, one per way, as the writer found them in its read of the
    set and changed them); clear every E bit (``clear_all``). At the edge."""
    ways = max(1, geom.stlb_ways)
    return wiring.Signature({
        "we": Out(ways), "addr": Out(_set_width(geom)), "data": Out(stlb_entry_layout(geom)),
        "e": Out(ways), "e_we": Out(1), "clear_all": Out(1),
    })


def mtlb_read_signature(geom: Geometry) -> wiring.Signature:
    """Read one entry's PS and halves, combinationally."""
    return wiring.Signature({
        "addr": Out(range(max(2, geom.mtlb_entries))), "data": In(mtlb_data_layout(geom)),
    })


def mtlb_tag_read_signature(geom: Geometry) -> wiring.Signature:
    """Read one entry's tag by index, combinationally."""
    return wiring.Signature({
        "addr": Out(range(max(2, geom.mtlb_entries))), "tag": In(tag_layout(geom)),
    })


def mtlb_write_signature(geom: Geometry) -> wiring.Signature:
    """Write entry ``addr`` (``en``) with ``entry``, its compare mask and E = ``e``; clear the
    E bits ``clear``. At the edge."""
    return wiring.Signature({
        "en": Out(1), "addr": Out(range(max(2, geom.mtlb_entries))),
        "entry": Out(mtlb_entry_layout(geom)), "mask": Out(max(1, len(mask_groups(geom)))),
        "e": Out(1), "clear": Out(geom.mtlb_entries),
    })


class STLB(wiring.Component):
    """The STLB: one :class:`~amaranth.lib.memory.Memory` per way, ``sets`` rows deep, one
    entry (tag and both halves, no E) per row, so that a write is one write to one memory
    with no read-modify-write and reading a set is reading every way at one address; and
    one more memory, ``sets`` words of one E bit per way, read with the rows (every read
    gives a set's rows and its E bits together) and written a set's word at a time (the
    writer read the set before and gives every way's E bit). INVTLB op 0/1 clears every E
    bit in one cycle by marking every set ``stale`` (a set's E bits read 0 until its word
    is written again); ``occupied`` holds per set whether its E bits are not all 0. So the
    E bits take memory, not a flip-flop each, and no reader selects among all the sets but
    the one-bit ``stale``. No read is transparent to a write: the unit never reads a set in
    the cycle it is written (an instruction writes at the end of its ``done`` cycle, in
    which nothing else is accepted, and lookups do not overlap instructions).

    Members
    -------
    read : In(stlb_read_signature).array(n)
        Set reads (rows and E bits): 1 cycle.
    write : In(stlb_write_signature)
        At the clock edge.
    stlbps : In(6)
        STLBPS; ``care`` (Out): the VPPN bits every STLB entry compares under it, a cycle
        after STLBPS (every compare comes a cycle after its request or later).
    occupied : Out(sets)
        The sets that hold a valid entry.
    e_bits : Out(sets * ``geom.e_bits_pitch``), with ``observe=True``
        Every E bit, for a checker: set by set, each set's word padded to whole bytes
        (``Geometry.e_bit_position``).
    contents : Out(every row, way-major), with ``contents=True``
        Every row at once, for a formal checker (a read port per row).
    """

    LATENCY = {"read": 1, "care": 1, "write": 1}

    def __init__(self, geom: Geometry, reads: int, observe: bool = False,
                 contents: bool = False):
        self.geom = geom
        W, S = geom.stlb_ways, geom.stlb_sets
        members = {
            "read": In(stlb_read_signature(geom)).array(reads),
            "write": In(stlb_write_signature(geom)),
            "stlbps": In(6), "care": Out(geom.vppn_bits), "occupied": Out(S),
        }
        if observe or contents:
            members["e_bits"] = Out(S * geom.e_bits_pitch)
        if contents:
            members["contents"] = Out(data.ArrayLayout(stlb_entry_layout(geom), W * S))
        super().__init__(members)

    def elaborate(self, platform):
        g = self.geom
        W, S = g.stlb_ways, g.stlb_sets
        m = Module()
        wr = self.write
        mems, wports = [], []
        for w in range(W):
            mem = m.submodules[f"way{w}"] = memory.Memory(shape=stlb_entry_layout(g), depth=S,
                                                          init=[])
            mems.append(mem)
            wports.append(mem.write_port())
            m.d.comb += [wports[w].addr.eq(wr.addr), wports[w].data.eq(wr.data),
                         wports[w].en.eq(wr.we[w])]
        e_mem = m.submodules.e = memory.Memory(shape=W, depth=S, init=[])
        e_wport = e_mem.write_port()
        m.d.comb += [e_wport.addr.eq(wr.addr), e_wport.data.eq(wr.e), e_wport.en.eq(wr.e_we)]
        # a set is stale from the reset or an INVTLB op 0/1 to the next write of its E bits
        stale = Signal(S, init=(1 << S) - 1, name="stale")
        occupied = Signal(S, name="occupied_sets")
        m.d.comb += self.occupied.eq(occupied)
        with m.If(wr.clear_all):
            m.d.sync += [stale.eq((1 << S) - 1), occupied.eq(0)]
        with m.Elif(wr.e_we):
            m.d.sync += [stale.bit_select(wr.addr, 1).eq(0),
                         occupied.bit_select(wr.addr, 1).eq(wr.e.any())]

        for rd in self.read:
            for w in range(W):
                rp = mems[w].read_port()
                m.d.comb += [rp.addr.eq(rd.addr), rd.rows[w].eq(rp.data)]
            e_rp = e_mem.read_port()
            m.d.comb += e_rp.addr.eq(rd.addr)
            # the set's stale bit at the registered address, beside the word read at it (no
            # write lands at the edge that reads its set: the bit is the one of the read)
            read_set = delayed(m, rd.addr, "read_set")
            m.d.comb += rd.e.eq(Mux(stale.bit_select(read_set, 1), 0, e_rp.data))
        if "e_bits" in self.signature.members:
            # in a module of its own: a simulator evaluates it when the E bits change only
            observe = m.submodules.observe = Module()
            pad = g.e_bits_pitch - W
            words = []
            for s in range(S):
                rp = e_mem.read_port(domain="comb")
                observe.d.comb += rp.addr.eq(s)
                words += [Mux(stale[s], 0, rp.data), Const(0, pad)]
            observe.d.comb += self.e_bits.eq(Cat(*words))
        if "contents" in self.signature.members:
            for w in range(W):
                for s in range(S):
                    rp = mems[w].read_port(domain="comb")
                    m.d.comb += [rp.addr.eq(s), self.contents[w * S + s].eq(rp.data)]
        sizes = m.submodules.sizes = PageSize(g, compare=True)
        m.d.comb += sizes.ps.eq(self.stlbps)
        m.d.sync += self.care.eq(care_of(g, sizes.compare))
        return m


def mtlb_regs_signature(geom: Geometry) -> wiring.Signature:
    """The MTLB's registers, which every reader matches at once: each entry's ``tags``,
    ``cares`` (the VPPN bits it compares) and ``e`` bit."""
    M = geom.mtlb_entries
    return wiring.Signature({
        "tags": In(data.ArrayLayout(tag_layout(geom), M)),
        "cares": In(data.ArrayLayout(geom.vppn_bits, M)), "e": In(M),
    })


class MTLB(wiring.Component):
    """The MTLB: the tags in registers, for the match of every entry at once, each with its
    compare mask (decoded from PS when written: one decoder for the bank, not one per entry)
    and E bit beside it; PS and both halves in a memory, read by index (the first hit,
    TLBRD's Index) through one asynchronous port per reader. On an FPGA that is LUT RAM in
    place of a one-hot select over every entry per reader; in simulation, an array read.
    The tags are written to a memory of their own as well, for the one reader that reads a
    tag by index (TLBRD): a LUT RAM in place of a select of every tag register.

    Members
    -------
    read : In(mtlb_read_signature).array(n)
        Data reads: 0 cycles.
    tag_read : In(mtlb_tag_read_signature)
        A tag read: 0 cycles.
    write : In(mtlb_write_signature)
        At the clock edge.
    regs : In(mtlb_regs_signature)
        Every entry's tag, the VPPN bits it compares, its E bit: registers.
    contents, tag_copies : Out(every entry; every tag in the copy), with ``contents=True``
        Every entry at once, and every tag as the copy TLBRD reads holds it, for a formal
        checker (a read port per entry).
    """

    LATENCY = {"read": 0, "tag_read": 0, "write": 1}

    def __init__(self, geom: Geometry, reads: int, contents: bool = False):
        self.geom = geom
        members = {
            "read": In(mtlb_read_signature(geom)).array(reads),
            "tag_read": In(mtlb_tag_read_signature(geom)),
            "write": In(mtlb_write_signature(geom)),
            "regs": In(mtlb_regs_signature(geom)),
        }
        if contents:
            members["contents"] = Out(data.ArrayLayout(mtlb_entry_layout(geom),
                                                       geom.mtlb_entries))
            members["tag_copies"] = Out(data.ArrayLayout(tag_layout(geom), geom.mtlb_entries))
        super().__init__(members)

    def elaborate(self, platform):
        g = self.geom
        M = g.mtlb_entries
        m = Module()
        tags = [Signal(tag_layout(g), name=f"tag{i}") for i in range(M)]
        masks = [Signal(len(self.write.mask), name=f"mask{i}") for i in range(M)]
        e = Signal(M, name="e")
        mem = m.submodules.data = memory.Memory(shape=mtlb_data_layout(g), depth=M, init=[])
        wport = mem.write_port()
        for rd in self.read:
            rp = mem.read_port(domain="comb")
            m.d.comb += [rp.addr.eq(rd.addr), rd.data.eq(rp.data)]
        tag_mem = m.submodules.tag_copy = memory.Memory(shape=tag_layout(g), depth=M, init=[])
        tag_wport, tag_rp = tag_mem.write_port(), tag_mem.read_port(domain="comb")
        m.d.comb += [tag_rp.addr.eq(self.tag_read.addr), self.tag_read.tag.eq(tag_rp.data)]
        if "tag_copies" in self.signature.members:
            for i in range(M):
                rp = tag_mem.read_port(domain="comb")
                m.d.comb += [rp.addr.eq(i), self.tag_copies[i].eq(rp.data)]
        m.d.comb += self.regs.e.eq(e)
        if "contents" in self.signature.members:
            for i in range(M):
                rp = mem.read_port(domain="comb")
                entry = self.contents[i]
                m.d.comb += [rp.addr.eq(i), entry.tag.eq(tags[i]), entry.ps.eq(rp.data.ps),
                             entry.lo0.eq(rp.data.lo0), entry.lo1.eq(rp.data.lo1)]
        for i in range(M):
            m.d.comb += [self.regs.tags[i].eq(tags[i]),
                         self.regs.cares[i].eq(care_of(g, masks[i]))]

        wr = self.write
        we = Signal(M, name="we")
        m.d.comb += we.eq(Mux(wr.en, decoder(m, wr.addr, M, "we_dec"), 0))
        for i in range(M):
            with m.If(we[i]):
                m.d.sync += [tags[i].eq(wr.entry.tag), masks[i].eq(wr.mask)]
        m.d.comb += [wport.en.eq(wr.en), wport.addr.eq(wr.addr),
                     wport.data.ps.eq(wr.entry.ps), wport.data.lo0.eq(wr.entry.lo0),
                     wport.data.lo1.eq(wr.entry.lo1),
                     tag_wport.en.eq(wr.en), tag_wport.addr.eq(wr.addr),
                     tag_wport.data.eq(wr.entry.tag)]
        m.d.sync += e.eq((e & ~wr.clear & ~we) | Mux(wr.e, we, 0))
        return m
