"""Each RTL block against the matching piece of the reference model: the replacement's
choice against the model's victim, the MTLB with the match against the model's match, the
page-size tables against the geometry's arithmetic, the CSR file against the model's CSRs,
the instruction unit's operand blocks against the model's instructions (the entry TLBWR and
TLBFILL write, TLBRD's readout, TLBSRCH's result, what the clears clear) and INVTLB's sweep
against the sets it must visit. The whole unit is checked in cosim elsewhere; these name the
block a difference is in."""

import dataclasses
import random

import pytest
from amaranth import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from conftest import GEOMS
from loongtlb.rtl.csrfile import CSRFile
from loongtlb.rtl.insn import InstructionUnit, Sweep
from loongtlb.rtl.layouts import InsnOp, mask_groups
from loongtlb.rtl.lookup import LookupPort
from loongtlb.rtl.match import Match
from loongtlb.rtl.operands import (EntryRead, EntrySource, IndexDecode, InstructionMatch,
                                   SearchResult)
from loongtlb.rtl.pagesize import PageSize
from loongtlb.rtl.replacement import Replacement
from loongtlb.rtl.storage import MTLB, STLB
from loongtlb.rtl.unit import BLOCKS
from loongtlb.sw_model.csr import CSR, CSR_NAMES, csr_fields, elo_fields
from loongtlb.sw_model.tlb import Entry, ReferenceTLB
from loongtlb.testbench.backends import e_bits_in_index_order


def simulate(design, bench):
    sim = Simulator(design)
    sim.add_clock(1e-6, if_exists=True)
    sim.add_testbench(bench)
    sim.run()


def _tag(e: Entry) -> dict:
    """A model entry's tag as the RTL's tag layout."""
    return {"asid": e.asid, "g": e.g, "vppn": e.vppn}


def _compare_mask(g, ps: int) -> int:
    """The compare mask of page size ``ps``: a bit for each mask group, set where the group's
    VPPN bits lie at VA bit PS + 1 or above."""
    return sum(int(ps - 12 <= lo) << k for k, (lo, _hi) in enumerate(mask_groups(g)))


def test_every_block_states_its_latency():
    for block in BLOCKS:
        assert block.LATENCY and block.__doc__, block
    # the instruction unit's cycles are within the contract's budgets (interfaces.md
    # section 2; INVTLB 2-4: the STLB's sets + 4)
    contract = {"TLBWR": 4, "TLBRD": 4, "TLBFILL": 4, "TLBSRCH": 4, "INVTLB 0/1": 3,
                "TLBFLUSH": 3, "INVTLB 5/6": 4, "TLBCLR (STLB set)": 4, "TLBCLR (MTLB)": 4,
                "ERTN": 2, "INVTLB (op above 6)": 3}
    cycles = InstructionUnit.CYCLES
    assert {k for k, v in cycles.items() if isinstance(v, int)} == set(contract)
    assert all(cycles[k] <= budget for k, budget in contract.items())
    assert InstructionUnit.SWEEP_CYCLES <= 4


@pytest.mark.parametrize("name", ["tiny", "tiny_rr", "odd"])
def test_replacement_against_the_model_victim(name):
    """Random E bits, full more often than not: the slot the block registers is the one
    the model's _victim picks, its LFSR or pointers stepped alike (D9, D10)."""
    g = GEOMS[name]
    dut = Replacement(g)
    model = ReferenceTLB(g)
    rng = random.Random(1)

    async def bench(ctx):
        for _ in range(300):
            bank = rng.choice(["stlb", "mtlb"])
            n = g.stlb_ways if bank == "stlb" else g.mtlb_entries
            e = (1 << n) - 1 if rng.random() < 0.6 else rng.getrandbits(n)
            ctx.set(getattr(dut, f"{bank}_e"), e)
            await ctx.tick()
            slot = ctx.get(getattr(dut.choice, f"{bank}_slot"))
            full = ctx.get(getattr(dut.choice, f"{bank}_full"))
            want = model._victim(bank, [Entry(e=bool(e >> i & 1)) for i in range(n)])
            assert (slot, full) == (want, e == (1 << n) - 1)
            ctx.set(getattr(dut.choice, f"{bank}_step"), full)
            await ctx.tick()
            ctx.set(getattr(dut.choice, f"{bank}_step"), 0)

    simulate(dut, bench)


class _MTLBMatch(Elaboratable):
    """The MTLB, its writes' compare masks from the page-size table, and a match."""

    def __init__(self, g):
        self.mtlb, self.sizes, self.match = MTLB(g, reads=1), PageSize(g, compare=True), \
            Match(g, g.mtlb_entries)

    def elaborate(self, platform):
        m = Module()
        m.submodules += [self.mtlb, self.sizes, self.match]
        m.d.comb += [self.sizes.ps.eq(self.mtlb.write.entry.ps),
                     self.mtlb.write.mask.eq(self.sizes.compare),
                     self.match.tags.eq(self.mtlb.regs.tags),
                     self.match.cares.eq(self.mtlb.regs.cares),
                     self.match.e.eq(self.mtlb.regs.e)]
        return m


@pytest.mark.parametrize("name", ["tiny", "narrow"])
def test_mtlb_and_match_against_the_model_match(name):
    """Entries of every page size written through the MTLB's write port, then keys near
    them: the match's hits are the model's (its MTLB part), for ASIDs and G alike."""
    g = GEOMS[name]
    dut = _MTLBMatch(g)
    model = ReferenceTLB(g)
    rng = random.Random(2)
    vpn_mask = (1 << g.vppn_bits) - 1

    async def bench(ctx):
        wr = dut.mtlb.write
        bases = []
        for i in range(g.mtlb_entries):
            ps = rng.choice(g.page_shifts)
            entry = Entry(e=True, asid=rng.getrandbits(2), g=rng.random() < 0.3,
                          vppn=rng.getrandbits(g.vppn_bits), ps=ps)
            model.mtlb[i] = entry
            bases.append(entry.vppn)
            ctx.set(wr.en, 1)
            ctx.set(wr.addr, i)
            ctx.set(wr.e, 1)
            ctx.set(wr.entry, {"tag": _tag(entry), "ps": ps})
            await ctx.tick()
        ctx.set(wr.en, 0)
        model._changed()
        for _ in range(400):
            vpn = (rng.choice(bases) ^ (rng.getrandbits(12) if rng.random() < 0.5 else 0))
            vpn &= vpn_mask
            asid = rng.getrandbits(2)
            ctx.set(dut.match.key_vpn, vpn)
            ctx.set(dut.match.key_asid, asid)
            want = {index - g.stlb_entries for index, _e, _ps in model._matches(vpn << 13, asid)
                    if index >= g.stlb_entries}
            hits = ctx.get(dut.match.hits)
            assert {i for i in range(g.mtlb_entries) if hits >> i & 1} == want

    simulate(dut, bench)


class _InsnMatch(Elaboratable):
    """The MTLB (its writes' compare masks from the page-size table) and the instruction
    match over its registers; the STLB's rows are the match's inputs."""

    def __init__(self, g):
        self.mtlb, self.sizes = MTLB(g, reads=1), PageSize(g, compare=True)
        self.match = InstructionMatch(g)

    def elaborate(self, platform):
        m = Module()
        m.submodules += [self.mtlb, self.sizes, self.match]
        m.d.comb += [self.sizes.ps.eq(self.mtlb.write.entry.ps),
                     self.mtlb.write.mask.eq(self.sizes.compare)]
        wiring.connect(m, self.mtlb.regs, self.match.mtlb_regs)
        return m


@pytest.mark.parametrize("name", ["tiny", "odd"])
def test_instruction_match_clears_against_the_model(name):
    """What TLBCLR and INVTLB ops 0-7 clear in each bank (InstructionMatch's ``clr_``,
    ``inv_`` and ``page_`` vectors, gated by E as the states gate them) is what the model
    clears: random entries in the MTLB and in the STLB set of the VA, random G, ASIDs and
    operands."""
    g = GEOMS[name]
    dut, rng = _InsnMatch(g), random.Random(3)
    W, M = g.stlb_ways, g.mtlb_entries
    care = ((1 << g.vppn_bits) - 1) & -(1 << (g.stlb_page_shift - 12))

    def entry(vpn, ps):
        return Entry(e=rng.random() < 0.8, asid=rng.getrandbits(2), g=rng.random() < 0.3,
                     vppn=(vpn ^ (rng.getrandbits(3) << (ps - 12))) & ((1 << g.vppn_bits) - 1),
                     ps=ps)

    def cleared(slots, before):
        """Of ``slots`` (the model's entries, changed in place), those whose E went to 0."""
        return [b.e and not a.e for b, a in zip(before, slots)]

    async def bench(ctx):
        mt = dut.match
        for _trial in range(30):
            model = ReferenceTLB(g)
            va = rng.getrandbits(g.valen) & -(1 << 12)
            vpn, set_ = va >> 13, g.stlb_set_of(va, g.stlb_page_shift)
            for i in range(M):
                model.mtlb[i] = e = entry(vpn, rng.choice(g.page_shifts))
                for name_, value in (("en", 1), ("addr", i), ("e", e.e), ("entry", {
                        "tag": _tag(e), "ps": e.ps})):
                    ctx.set(getattr(dut.mtlb.write, name_), value)
                await ctx.tick()
            ctx.set(dut.mtlb.write.en, 0)
            for w in range(W):
                model.stlb[w][set_] = e = entry(vpn, g.stlb_page_shift)
                ctx.set(mt.stlb_tags[w], _tag(e))
            ctx.set(mt.stlb_care, care)
            model._changed()
            slots = [model.stlb[w][set_] for w in range(W)] + model.mtlb    # the clears' order
            asid, op = rng.getrandbits(2), rng.randrange(8)
            model.csrwr("ASID", asid)
            ctx.set(mt.cur_asid, asid)
            # the key and op latched at the accept
            for name_, value in (("accept", 1), ("op", InsnOp.INVTLB), ("va", va),
                                 ("asid", asid), ("inv_op", op)):
                ctx.set(getattr(mt, name_), value)
            await ctx.tick()
            ctx.set(mt.accept, 0)
            e_bits = [x.e for x in slots]
            vectors = {"clr": None, "inv": None, "page": None}
            for kind in vectors:
                bits = ctx.get(getattr(mt, f"{kind}_mtlb")) << W
                if W:
                    bits |= ctx.get(getattr(mt, f"{kind}_stlb"))
                vectors[kind] = [bool(bits >> i & 1) and e_bits[i] for i in range(W + M)]
            before = [dataclasses.replace(x) for x in slots]
            model.invtlb(op, asid, va)
            want = cleared(slots, before)
            if op < 5:
                assert vectors["inv"] == want, (op, want)
            elif op < 7:
                assert vectors["page"] == want, (op, want)
            else:
                assert not any(want)
            # TLBCLR of the MTLB, then of the STLB set
            for x, b in zip(slots, before):
                x.e = b.e
            model._changed()
            for index, part in ((g.stlb_entries, slice(W, None)), (set_, slice(0, W))):
                if part.start == 0 and not W:
                    continue
                model.csrwr("TLBIDX", index)
                snapshot = [dataclasses.replace(x) for x in slots]
                model.tlbclr()
                assert vectors["clr"][part] == cleared(slots, snapshot)[part]

    simulate(dut, bench)


@pytest.mark.parametrize("name", ["tiny", "la464", "narrow"])
def test_page_size_tables(name):
    g = GEOMS[name]
    dut = PageSize(g, set=True, odd=True, compare=True, offset=True)
    rng = random.Random(3)

    async def bench(ctx):
        for _ in range(200):
            ps = rng.choice(g.page_shifts)
            va = rng.getrandbits(g.valen)
            for port, value in ((dut.ps, ps), (dut.va, va), (dut.vpn, va >> 13)):
                ctx.set(port, value)
            if g.has_stlb:
                assert ctx.get(dut.set) == g.stlb_set_of(va, ps)
            assert ctx.get(dut.odd) == (va >> ps) & 1
            assert ctx.get(dut.offset) == ((1 << ps) - 1) & ((1 << g.palen) - 1)
            assert ctx.get(dut.compare) == _compare_mask(g, ps)

    simulate(dut, bench)


@pytest.mark.parametrize("name", ["tiny", "odd", "mtlb6"])
def test_index_decode_against_the_model_slot(name):
    """Every TLBIDX.Index value decodes to the slot the model's geometry names (D2, D18)."""
    g = GEOMS[name]
    dut = IndexDecode(g)

    async def bench(ctx):
        out = dut.decoded
        for index in range(1 << g.index_bits):
            ctx.set(dut.index, index)
            slot = g.slot_of_index(index)
            got = (ctx.get(out.in_stlb), ctx.get(out.in_mtlb))
            if slot is None:
                assert got == (0, 0), index
            elif slot.bank == "stlb":
                assert got == (1, 0) and (ctx.get(out.set), ctx.get(out.way)) == \
                    (slot.set, slot.way), index
            else:
                assert got == (0, 1) and ctx.get(out.entry) == slot.entry, index

    simulate(dut, bench)


@pytest.mark.parametrize("name", ["tiny", "la32r", "narrow"])
def test_csr_file_against_the_model(name):
    """Random writes through the CSR port read back as the model's CSRs read (D17, D19)."""
    g = GEOMS[name]
    dut = CSRFile(g)
    model = ReferenceTLB(g)
    rng = random.Random(4)
    ones = (1 << g.grlen) - 1

    async def bench(ctx):
        for _ in range(300):
            name_ = rng.choice(CSR_NAMES)
            value = rng.choice([rng.getrandbits(g.grlen), ones, 0, rng.choice(g.page_shifts)])
            ctx.set(dut.csr_addr, CSR[name_])
            ctx.set(dut.csr_wdata, value)
            ctx.set(dut.csr_we, 1)
            await ctx.tick()
            ctx.set(dut.csr_we, 0)
            model.csrwr(name_, value)
            for n in CSR_NAMES:
                assert ctx.get(getattr(dut.values, n)) == model.read_csr(n), n
            ctx.set(dut.csr_addr, CSR[name_])
            assert ctx.get(dut.csr_rdata) == model.read_csr(name_)

    simulate(dut, bench)


def test_stlb_writes_reads_and_clears():
    """The STLB block alone: a written row reads back a cycle later on every read port with
    its set's E bits as last written; ``e_bits`` and ``occupied`` follow; clear_all clears
    every E bit, and a set written after it shows its new E bits while every other set's
    read 0 still (their words in memory are stale)."""
    g = GEOMS["tiny"]
    W, S = g.stlb_ways, g.stlb_sets
    dut = STLB(g, reads=2, observe=True)
    rng = random.Random(5)

    def e_bits(e_of):        # set by set, a set's word padded to whole bytes
        return sum(e << (s * g.e_bits_pitch) for s, e in e_of.items())

    async def write(ctx, set_, we, e, data=None):
        wr = dut.write
        ctx.set(wr.addr, set_)
        ctx.set(wr.we, we)
        ctx.set(wr.e, e)
        ctx.set(wr.e_we, 1)
        if data is not None:
            ctx.set(wr.data, data)
        await ctx.tick()
        ctx.set(wr.we, 0)
        ctx.set(wr.e_we, 0)

    async def check(ctx, written, e_of):
        for (set_, way), vppn in written.items():
            for rd in dut.read:
                ctx.set(rd.addr, set_)
            await ctx.tick()
            for rd in dut.read:
                assert ctx.get(rd.rows[way].tag.vppn) == vppn
                assert ctx.get(rd.e) == e_of.get(set_, 0)
        assert ctx.get(dut.e_bits) == e_bits(e_of)
        assert ctx.get(dut.occupied) == sum(1 << s for s, e in e_of.items() if e)

    async def bench(ctx):
        written, e_of = {}, {}
        for _ in range(20):
            set_, way = rng.randrange(S), rng.randrange(W)
            vppn = rng.getrandbits(g.vppn_bits)
            e_of[set_] = e_of.get(set_, 0) | 1 << way
            await write(ctx, set_, 1 << way, e_of[set_], {"tag": {"vppn": vppn}})
            written[(set_, way)] = vppn
        await check(ctx, written, e_of)
        # a set's E bits cleared in some ways (rows kept), another's all
        set_a, set_b = sorted(e_of)[:2]
        e_of[set_a] &= ~1 & ((1 << W) - 1)
        await write(ctx, set_a, 0, e_of[set_a])
        e_of[set_b] = 0
        await write(ctx, set_b, 0, 0)
        await check(ctx, written, e_of)
        ctx.set(dut.write.clear_all, 1)
        await ctx.tick()
        ctx.set(dut.write.clear_all, 0)
        assert ctx.get(dut.e_bits) == 0 and ctx.get(dut.occupied) == 0
        e_of = {set_a: 0b10}
        await write(ctx, set_a, 0, 0b10)
        await check(ctx, written, e_of)

    simulate(dut, bench)


def test_lookup_port_latency_comes_from_the_geometry():
    """The port's stages: s1 registers for every latency, s2 for 2 and 3, s3 for 3."""
    from amaranth.back import rtlil

    for name, stages in (("tiny", {"s1"}), ("mtlb6", {"s1", "s2", "s3"})):
        g = GEOMS[name]
        text = rtlil.convert(LookupPort(g))
        assert {s for s in ("s1", "s2", "s3") if f"\\{s}_valid" in text} == stages


@pytest.mark.parametrize("ways, sets, mtlb", [(2, 4, 4), (3, 2, 5), (8, 256, 64), (9, 4, 2),
                                              (0, 1, 32)])
def test_observed_e_bits_back_in_index_order(ways, sets, mtlb):
    """The RTL observes the STLB's E bits set by set (Geometry.e_bit_position); the backends
    turn them back into Index order, each slot's bit to its Index."""
    g = dataclasses.replace(GEOMS["tiny"], stlb_ways=ways, stlb_sets=sets, mtlb_entries=mtlb)
    positions = [g.e_bit_position(i) for i in range(g.total_entries)]
    assert len(set(positions)) == g.total_entries and max(positions) < g.e_bits_width
    rng = random.Random(ways * 1000 + sets)
    for _ in range(20):
        index_order = rng.getrandbits(g.total_entries)
        observed = sum((index_order >> i & 1) << p for i, p in enumerate(positions))
        assert e_bits_in_index_order(g, observed) == index_order


def _half(g, elo: int) -> dict:
    """A TLBELO image as an entry half (the layout's field names, G aside)."""
    return {name.lower(): f.get(elo) for name, f in elo_fields(g).items() if name != "G"}


def _elo(g, half: dict, g_bit: int) -> int:
    """An entry half and the entry's G as a TLBELO image."""
    value = 0
    for name, f in elo_fields(g).items():
        value = f.put(value, g_bit if name == "G" else half[name.lower()])
    return value


def _random_csrs(g, model, rng) -> None:
    """Random writes through the model's csrwr into every CSR TLBWR and TLBFILL read: the
    refill context half of the time, PS listed (and STLBPS) more often than not, G set in
    both, one or neither TLBELO word."""
    fields = csr_fields(g)

    def ps():
        return rng.choice(g.page_shifts) if rng.random() < 0.85 else rng.randrange(64)

    for name in ("TLBEHI", "TLBREHI", "TLBELO0", "TLBELO1", "TLBRELO0", "TLBRELO1", "TLBIDX",
                 "ASID"):
        value = rng.getrandbits(g.grlen)
        if name in ("TLBIDX", "TLBREHI"):
            value = fields[name]["PS"].put(value, ps())
        if name.startswith(("TLBELO", "TLBRELO")):
            value = fields[name]["G"].put(value, rng.random() < 0.6)
        model.csrwr(name, value)
    model.csrwr("TLBRERA", rng.getrandbits(1))
    src = "TLBREHI" if model.in_refill else "TLBIDX"
    if g.has_stlb and rng.random() < 0.5:
        model.csrwr("STLBPS", fields[src]["PS"].get(model.csr[src]))


@pytest.mark.parametrize("name", ["tiny", "tiny_ignore", "la32r", "mtlb6"])
def test_entry_source_against_the_model_new_entry(name):
    """The entry TLBWR and TLBFILL write from random CSRs, in and out of the refill context,
    is the model's (D3, D4, D5): tag, PS, both halves, E for each instruction (both
    ``tlbfill_ne`` readings), whether TLBFILL goes to the STLB (D9) and whether PS is
    listed (D19)."""
    g = GEOMS[name]
    dut = EntrySource(g)
    model, rng = ReferenceTLB(g), random.Random(6)

    async def bench(ctx):
        for _ in range(300):
            _random_csrs(g, model, rng)
            for csr in CSR_NAMES:
                if csr != "PRCFG3":
                    ctx.set(getattr(dut.csr, csr).as_value(), model.csr[csr])
            for fill in (0, 1):
                ctx.set(dut.fill, fill)
                want, ps = model._new_entry(fill=bool(fill))
                entry = dut.entry
                got_tag = (ctx.get(entry.tag.asid), ctx.get(entry.tag.g), ctx.get(entry.tag.vppn))
                assert got_tag == (want.asid, want.g, want.vppn)
                assert ctx.get(entry.ps) == ps and ctx.get(dut.e) == want.e, fill
                for half, lo in ((entry.lo0, want.lo0), (entry.lo1, want.lo1)):
                    assert _elo(g, {k: ctx.get(getattr(half, k)) for k in _half(g, 0)}, 0) == lo
                assert ctx.get(dut.ps_listed) == (ps in g.page_shifts)
                if g.has_stlb:
                    assert ctx.get(dut.to_stlb) == (ps == model.stlbps)
                if ps in g.page_shifts:
                    assert ctx.get(dut.compare) == _compare_mask(g, ps)

    simulate(dut, bench)


class _IndexRead(Elaboratable):
    """TLBIDX.Index decoded, and TLBRD's readout from it."""

    def __init__(self, g):
        self.decode, self.read = IndexDecode(g), EntryRead(g)

    def elaborate(self, platform):
        m = Module()
        m.submodules += [self.decode, self.read]
        wiring.connect(m, self.decode.decoded, self.read.index)
        return m


def _random_entry(g, rng, ps: int) -> Entry:
    elo = [_elo(g, _half(g, rng.getrandbits(g.grlen)), 0) for _ in range(2)]
    return Entry(e=rng.random() < 0.7, asid=rng.getrandbits(g.asid_bits), g=rng.random() < 0.3,
                 vppn=rng.getrandbits(g.vppn_bits), ps=ps, lo0=elo[0], lo1=elo[1])


def _entry_value(g, e: Entry) -> dict:
    return {"tag": _tag(e),
            "lo0": _half(g, e.lo0), "lo1": _half(g, e.lo1)}


@pytest.mark.parametrize("name", ["tiny", "odd", "la32r", "mtlb6"])
def test_entry_read_against_the_model_tlbrd(name):
    """Random entries in both banks, every Index (out of range too): whether the slot holds
    an entry, and then TLBEHI.VPPN, TLBELO0/1 (G in both), TLBIDX.PS (STLBPS for an STLB
    slot) and ASID.ASID, are what the model's tlbrd writes (D8, D18)."""
    g = GEOMS[name]
    dut, rng = _IndexRead(g), random.Random(7)
    fields = csr_fields(g)

    async def bench(ctx):
        rd = dut.read
        for _trial in range(4):
            model = ReferenceTLB(g)
            if g.has_stlb:
                model.csrwr("STLBPS", rng.choice(g.page_shifts))
                for w in range(g.stlb_ways):
                    model.stlb[w] = [_random_entry(g, rng, 0) for _ in range(g.stlb_sets)]
                ctx.set(rd.stlbps, model.stlbps)
            model.mtlb = [_random_entry(g, rng, rng.choice(g.page_shifts))
                          for _ in range(g.mtlb_entries)]
            ctx.set(rd.mtlb_e, sum(e.e << i for i, e in enumerate(model.mtlb)))
            model._changed()
            for index in range(1 << g.index_bits):
                ctx.set(dut.decode.index, index)
                slot = g.slot_of_index(index)
                if slot is not None and slot.bank == "stlb":     # the rows of the Index's set
                    rows = [model.stlb[w][slot.set] for w in range(g.stlb_ways)]
                    for w, e in enumerate(rows):
                        ctx.set(rd.stlb_rows[w], _entry_value(g, e))
                    ctx.set(rd.stlb_e, sum(e.e << w for w, e in enumerate(rows)))
                elif slot is not None:                           # the MTLB entry's tag, data
                    e = model.mtlb[slot.entry]
                    value = _entry_value(g, e)
                    ctx.set(rd.mtlb_tag, value.pop("tag"))
                    ctx.set(rd.mtlb_data, {"ps": e.ps, **value})
                model.csrwr("TLBIDX", index)
                want = model.tlbrd()
                present = not fields["TLBIDX"]["NE"].get(want["TLBIDX"])
                res = rd.result
                assert ctx.get(res.present) == present, index
                if present:
                    assert (ctx.get(res.vppn), ctx.get(res.ps), ctx.get(res.asid)) == \
                        (fields["TLBEHI"]["VPPN"].get(model.csr["TLBEHI"]),
                         fields["TLBIDX"]["PS"].get(want["TLBIDX"]), model.asid), index
                    assert ctx.get(res.elo0.as_value()) == want["TLBELO0"], index
                    assert ctx.get(res.elo1.as_value()) == want["TLBELO1"], index

    simulate(dut, bench)


@pytest.mark.parametrize("name", ["tiny", "odd", "mtlb6"])
def test_search_result_against_the_model_tlbsrch(name):
    """Random hit vectors (the STLB's from the tags alone, its set's E bits a cycle later;
    the MTLB's with E), with a model TLB built to match them: the Index TLBSRCH writes (the
    lowest hit, the STLB's before the MTLB's), whether it found one, and whether more than
    one matched are the model's tlbsrch's (D6, D7)."""
    g = GEOMS[name]
    dut, rng = SearchResult(g), random.Random(8)
    W, M = g.stlb_ways, g.mtlb_entries
    fields = csr_fields(g)
    far = 1 << (g.vppn_bits - 1)          # a VPPN bit above every page size's

    async def bench(ctx):
        for _ in range(300):
            model = ReferenceTLB(g)
            asid, vpn = rng.getrandbits(g.asid_bits), rng.getrandbits(g.vppn_bits)
            model.csrwr("ASID", asid)
            model.csrwr("TLBEHI", vpn << 13)
            s_hits, s_e, m_hits = (rng.getrandbits(W) if rng.random() < 0.7 else 0,
                                   rng.getrandbits(W), rng.getrandbits(M)
                                   if rng.random() < 0.7 else 0)
            if g.has_stlb:
                set_ = g.stlb_set_of(vpn << 13, model.stlbps)
                for w in range(W):
                    model.stlb[w][set_] = Entry(e=bool(s_e >> w & 1), asid=asid,
                                                g=rng.random() < 0.3,
                                                vppn=vpn ^ (0 if s_hits >> w & 1 else far))
                ctx.set(dut.stlb_hits, s_hits)
                ctx.set(dut.set, set_)
            for i in range(M):
                # a miss: another VPPN, or this one with E = 0
                hit, e = m_hits >> i & 1, (m_hits >> i & 1) or rng.random() < 0.5
                model.mtlb[i] = Entry(e=bool(e), asid=asid, g=rng.random() < 0.3,
                                      ps=rng.choice(g.page_shifts),
                                      vppn=vpn ^ (0 if hit or not e else far))
            model._changed()
            ctx.set(dut.mtlb_hits, m_hits)
            ctx.set(dut.capture, 1)
            await ctx.tick()
            ctx.set(dut.capture, 0)
            ctx.set(dut.mtlb_hits, 0)          # captured: later inputs change nothing
            if g.has_stlb:
                ctx.set(dut.stlb_hits, 0)
                ctx.set(dut.set, rng.randrange(g.stlb_sets))
                ctx.set(dut.stlb_e, s_e)
            tlbidx = model.tlbsrch()["TLBIDX"]
            found = not fields["TLBIDX"]["NE"].get(tlbidx)
            assert ctx.get(dut.result.found) == found
            assert ctx.get(dut.multi) == model.multi_hit
            if found:
                assert ctx.get(dut.result.index) == fields["TLBIDX"]["Index"].get(tlbidx)

    simulate(dut, bench)


@pytest.mark.parametrize("name", ["tiny", "odd", "la464"])
def test_sweep_visits_the_occupied_sets_in_order(name):
    """INVTLB op 2-4's walk: in walks of random occupied sets (changing during the walk,
    as the walk's clears change them), the sets read are those occupied when the walk began,
    lowest first, the first in the walk's second cycle and then one a cycle; ``rows`` a
    cycle after each; ``last`` from the cycle after the last (from the first with none)."""
    g = GEOMS[name]
    S = g.stlb_sets
    dut, rng = Sweep(g), random.Random(9)

    async def bench(ctx):
        for _walk in range(40):
            occupied = rng.getrandbits(S) if rng.random() < 0.8 else 0
            if S > 8 and rng.random() < 0.7:
                occupied &= rng.getrandbits(S) & rng.getrandbits(S)     # a few sets only
            ctx.set(dut.occupied, occupied)
            for _ in range(rng.randrange(1, 3)):
                await ctx.tick()
            want = [s for s in range(S) if occupied >> s & 1]
            ctx.set(dut.active, 1)
            issued, rows_at, last_at = [], [], None
            for cycle in range(len(want) + 3):
                if ctx.get(dut.issue):
                    issued.append((cycle, ctx.get(dut.set)))
                if ctx.get(dut.rows):
                    rows_at.append(cycle)
                if ctx.get(dut.last) and last_at is None:
                    last_at = cycle
                if last_at is not None:
                    assert ctx.get(dut.last) and not ctx.get(dut.issue)
                ctx.set(dut.occupied, rng.getrandbits(S))
                await ctx.tick()
            ctx.set(dut.active, 0)
            assert issued == [(1 + k, s) for k, s in enumerate(want)], (occupied, issued)
            assert rows_at == [c + 1 for c, _s in issued]
            assert last_at == (len(want) + 1 if want else 0)

    simulate(dut, bench)
