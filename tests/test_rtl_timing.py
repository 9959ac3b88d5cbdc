"""Cycle budgets of the RTL (issue #3), lookup throughput, waveforms, and a la464 smoke run."""

import re
from dataclasses import replace

import pytest
from amaranth.sim import Simulator

from conftest import CONFIGS, GEOMS, TRACES, need_verilator
from loongtlb.rtl.layouts import Access, InsnOp
from loongtlb.rtl.csrfile import CSRFile
from loongtlb.rtl.insn import InstructionUnit
from loongtlb.rtl.unit import TLBUnit
from loongtlb.sw_model.csr import CSR
from loongtlb.sw_model.tlb import ReferenceTLB
from loongtlb.testbench.backends import make_backend
from loongtlb.testbench.cli import main
from loongtlb.testbench.port import TLBPort
from loongtlb.testbench.trace import Op
from tlbutil import elo, fill, write

#: (op, args, the instruction unit's latency table entry): the most cycles it may take,
#: from its first input to its last edge
C = InstructionUnit.CYCLES
BUDGETS = [
    ("tlbwr", {}, C["TLBWR"]), ("tlbfill", {}, C["TLBFILL"]), ("tlbsrch", {}, C["TLBSRCH"]),
    ("tlbrd", {}, C["TLBRD"]), ("ertn", {}, C["ERTN"]),
    ("invtlb", {"inv_op": 0, "asid": 0, "va": 0}, C["INVTLB 0/1"]),
    ("invtlb", {"inv_op": 1, "asid": 0, "va": 0}, C["INVTLB 0/1"]),
    ("invtlb", {"inv_op": 5, "asid": 1, "va": 0x8000}, C["INVTLB 5/6"]),
    ("invtlb", {"inv_op": 6, "asid": 1, "va": 0x8000}, C["INVTLB 5/6"]),
    ("invtlb", {"inv_op": 7, "asid": 1, "va": 0x8000}, C["INVTLB (op above 6)"]),
]
SWEEP = InstructionUnit.SWEEP_CYCLES


@pytest.mark.parametrize("sim", ["pysim", "verilator"])
@pytest.mark.parametrize("name", ["tiny", "odd"])
def test_cycle_budgets(name, sim):
    geom = GEOMS[name]
    sets = geom.stlb_sets
    if sim == "verilator":
        need_verilator()
    backend = make_backend(geom, "rtl", sim=sim)
    port = TLBPort(backend)
    fill(port, 0x8000, elo(4), elo(8))

    def cycles(kind, **args):
        backend.execute(Op(kind, args))
        return backend.last_cycles

    try:
        for kind, args, budget in BUDGETS:
            assert cycles(kind, **args) <= budget, kind
        for op in (2, 3, 4):
            assert cycles("invtlb", inv_op=op, asid=1, va=0) <= sets + SWEEP
        for index, clr in ((0, C["TLBCLR (STLB set)"]), (geom.stlb_entries, C["TLBCLR (MTLB)"])):
            write(port, TLBIDX=index)
            assert cycles("tlbclr") <= clr
            assert cycles("tlbflush") <= C["TLBFLUSH"]
        # the figures are exact, not only bounds
        for kind, args, budget in BUDGETS[:4]:
            assert cycles(kind, **args) == budget, kind
        # a lookup: its response, then its exception's CSR writes landing (csr_ready low)
        latency = geom.lookup_latency
        hit = {"va": 0x8000, "access": "load", "port": 0}
        fill(port, 0x8000, elo(4), elo(8))
        assert cycles("translate", **hit) == latency + 1
        assert cycles("translate", **hit | {"va": 0x7000_0000}) == \
            latency + CSRFile.LATENCY["exception"]
        cycles("ertn")                         # out of the refill context the TLBR entered
        # the sweep of op 2-4 visits the occupied STLB sets only: one here, all below
        fill(port, 0x8000, elo(4), elo(8))
        assert cycles("invtlb", inv_op=2, asid=0, va=0) == SWEEP + 1
        for set_ in range(sets):
            fill(port, set_ << 15, elo(4), elo(8))
        assert cycles("invtlb", inv_op=3, asid=0, va=0) == sets + SWEEP
        assert cycles("invtlb", inv_op=3, asid=0, va=0) == SWEEP - 1   # empty: the MTLB
    finally:
        backend.close()


@pytest.mark.parametrize("sim", ["pysim", "verilator"])
def test_replay_counts_rtl_cycles(sim, tmp_path, capsys):
    """``replay`` reports the RTL's clock cycles: the ops' own cycles, summed over CPUs."""
    if sim == "verilator":
        need_verilator()
    lines = ['{"op": "csrwr", "csr": "TLBEHI", "value": "0x8000"}',
             '{"op": "csrwr", "csr": "TLBELO0", "value": "0x1011"}',
             '{"op": "csrwr", "csr": "TLBIDX", "value": "0xe000000"}',
             '{"op": "tlbfill"}', '{"op": "tlbsrch"}', '{"op": "tlbrd", "cpu": 1}',
             '{"op": "csrrd", "csr": "TLBIDX"}', '{"op": "tlbwr", "cpu": 1}',
             '{"op": "translate", "va": "0x8000", "access": "load"}', '{"op": "ertn"}']
    latency = GEOMS["tiny"].lookup_latency
    # the translate raises no exception: nothing to land after its response's edge
    want = (3 * 1 + C["TLBFILL"] + C["TLBSRCH"] + C["TLBRD"] + 0 + C["TLBWR"]
            + latency + 1 + C["ERTN"])
    trace = tmp_path / "t.jsonl"
    trace.write_text("\n".join(lines) + "\n")
    for backend in ("rtl", "cosim"):
        assert main(["replay", str(CONFIGS / "tiny.yaml"), str(trace), "--backend", backend,
                     "--sim", sim]) == 0
        assert f"backend {backend}, {want:,} RTL cycles, " in capsys.readouterr().out
    assert main(["replay", str(CONFIGS / "tiny.yaml"), str(trace), "--backend", "model"]) == 0
    out = capsys.readouterr().out
    assert "backend model, " in out and "RTL cycles" not in out     # no RTL, no clock


@pytest.mark.parametrize("latency", [1, 2, 3])
def test_a_lookup_every_cycle_on_every_port(latency):
    """Both ports take a new VA every cycle; each answer comes ``lookup_latency`` cycles
    later and equals the reference model's."""
    geom = replace(GEOMS["tiny"], lookup_latency=latency)
    model = ReferenceTLB(geom)
    unit = TLBUnit(geom)
    vas = [0x40000000 + i * 0x2100 for i in range(24)]
    for va in vas[::3]:
        model.csrwr("TLBEHI", va)
        model.csrwr("TLBELO0", elo(va >> 12, plv=3))
        model.csrwr("TLBELO1", elo(va >> 12, v=0))
        model.csrwr("TLBIDX", 14 << 24)
        model.tlbfill()
    accesses = ["load", "store", "fetch"]
    # port 1 alternates between mapped addresses and unmapped ones (TLBR)
    requests = [(vas[i], accesses[i % 3], vas[-1 - i] if i % 2 else 0x70000000 + i * 0x1000,
                 accesses[(i + 1) % 3]) for i in range(len(vas))]
    expected = [(model.probe(a, b), model.probe(c, d)) for a, b, c, d in requests]
    seen = []

    async def bench(ctx):
        # load the same entries through the unit's own CSR and instruction ports
        for va in vas[::3]:
            for csr_name, value in (("TLBEHI", va), ("TLBELO0", elo(va >> 12, plv=3)),
                                    ("TLBELO1", elo(va >> 12, v=0)), ("TLBIDX", 14 << 24)):
                ctx.set(unit.csr_addr, CSR[csr_name])
                ctx.set(unit.csr_wdata, value)
                ctx.set(unit.csr_we, 1)
                await ctx.tick()
            ctx.set(unit.csr_we, 0)
            ctx.set(unit.insn_op, InsnOp.TLBFILL)
            ctx.set(unit.insn_valid, 1)
            await ctx.tick()
            ctx.set(unit.insn_valid, 0)
            while not ctx.get(unit.insn_done):
                await ctx.tick()
            await ctx.tick()
        for cycle in range(len(requests) + latency):
            if cycle >= latency:
                seen.append(tuple(
                    {"exc": ctx.get(p.exc).name, "pa": ctx.get(p.pa)} for p in unit.lookup))
                assert all(ctx.get(p.resp_valid) for p in unit.lookup)
            if cycle < len(requests):
                a, b, c, d = requests[cycle]
                for p, va, acc in ((unit.lookup[0], a, b), (unit.lookup[1], c, d)):
                    ctx.set(p.valid, 1)
                    ctx.set(p.va, va)
                    ctx.set(p.access, Access[acc.upper()])
                    ctx.set(p.effect, 0)
            else:
                for p in unit.lookup:
                    ctx.set(p.valid, 0)
            await ctx.tick()

    sim = Simulator(unit)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(seen) == len(requests)
    for got, want in zip(seen, expected, strict=True):
        for g, w in zip(got, want, strict=True):
            assert g["exc"] == w["exc"]
            if w["exc"] == "NONE":
                assert g["pa"] == w["pa"]
    assert {x["exc"] for w in expected for x in w} >= {"NONE", "TLBR", "PIL", "PIS"}


def test_vcd_written(tmp_path, capsys):
    vcd = tmp_path / "w.vcd"
    assert main(["replay", str(CONFIGS / "tiny.yaml"), str(TRACES / "refill.jsonl"),
                 "--vcd", str(vcd)]) == 0
    text = vcd.read_text()
    assert "$enddefinitions" in text and "insn_done" in text
    # the testbench drives the clock: with a VCD file, a rise per RTL cycle the replay
    # counts, each at a time of its own
    cycles = int(re.search(r"(\d+) RTL cycles", capsys.readouterr().out).group(1))
    clk = re.search(r"\$var wire 1 (\S+) clk \$end", text).group(1)
    body = text.split("$enddefinitions", 1)[1].splitlines()
    rises = [i for i, line in enumerate(body) if line == f"1{clk}"]
    times = [int(line[1:]) for line in body if line.startswith("#")]
    assert cycles > 10 and len(rises) == cycles
    assert times == sorted(set(times)) and len(times) > 2 * cycles


def test_rtl_backend_replay(capsys):
    assert main(["replay", str(CONFIGS / "tiny.yaml"), str(TRACES / "refill.jsonl"),
                 "--backend", "rtl"]) == 0
    assert "backend rtl" in capsys.readouterr().out


def test_la464_smoke(capsys):
    """The real geometry once: a trace in cosim, and a full-set fill on both sides."""
    assert main(["replay", str(CONFIGS / "la464.yaml"), str(TRACES / "refill.jsonl")]) == 0
    backend = make_backend(GEOMS["la464"], "cosim")
    port = TLBPort(backend)
    try:
        slots = [fill(port, (i << 23) | 0x8000, elo(i), elo(i))["slot"] for i in range(10)]
        assert slots[:8] == [1 + 256 * w for w in range(8)]
        assert all(s % 256 == 1 for s in slots)
        for set_ in (17, 200):        # sets in other blocks of 16 of the sweep's search
            fill(port, set_ << 15, elo(1), elo(1))
        port.invtlb(3, 0, 0)          # the full 256-set sweep
        for va in (0x8000, 17 << 15, 200 << 15):
            assert port.translate(va, "load")["exc"] == "TLBR"
    finally:
        backend.close()
