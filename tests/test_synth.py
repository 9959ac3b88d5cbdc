"""loongtlb synth (issue #6): one real run on tiny, and the device checks.

la464 and la32r take minutes to place and route; they belong to benchmarks/fpga.py.
"""

import json
import sys

import pytest
from amaranth import Shape
from amaranth.lib.wiring import In

from conftest import CONFIGS, GEOMS, need_fpga_tools
from loongtlb.testbench.synth import SynthError, check_fit, fmax_of
from loongtlb.rtl.unit import TLBUnit
from loongtlb.testbench.cli import main


def _port_bits(geom) -> tuple[int, int]:
    unit = TLBUnit(geom)
    unit._MustUse__silence = True                 # only its signature is wanted
    ins = outs = 0
    for _path, member, _value in unit.signature.flatten(unit):
        width = Shape.cast(member.shape).width
        if member.flow == In:
            ins += width
        else:
            outs += width
    return ins, outs


def test_tiny_on_ecp5(capsys, tmp_path):
    need_fpga_tools()
    # the smallest ECP5 that holds it: place and route is quicker on a smaller grid
    code = main(["synth", str(CONFIGS / "tiny.yaml"), "--target", "ecp5", "--device", "25k",
                 "--json", "--workdir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)                      # stdout is the JSON document alone
    assert {"target", "device", "luts", "ffs", "brams", "fmax_mhz"} <= set(report)
    assert (report["target"], report["device"], report["speed"]) == ("ecp5", "25k", "8")
    # every input and output is registered around the unit, and the unit has registers of
    # its own (CSRs, the MTLB, the E bits) on top of that
    ins, outs = _port_bits(GEOMS["tiny"])
    assert report["ffs"] > ins + outs
    assert 0 < report["luts"] < report["device_luts"]
    assert report["brams"] == 0                   # 4 sets: the STLB goes to LUT RAM
    assert 10 < report["fmax_mhz"] < 500
    path = report["critical_path"]
    assert path["ns"] > 0 and path["levels"] > 0
    assert abs(1000 / path["ns"] - report["fmax_mhz"]) < 0.05 * report["fmax_mhz"]
    assert (tmp_path / "report.json").exists()    # --workdir keeps the tools' files
    # the deepest paths run between registers the RTL names, deepest first, and nextpnr's
    # critical path is no shorter in cells than the deepest path is in LUT levels
    deepest = report["depth"]["paths"]
    assert deepest and all(p["levels"] <= deepest[0]["levels"] for p in deepest)
    assert deepest[0]["levels"] >= 2
    assert all(p["from"].startswith(("unit.", "lookup", "csr", "insn")) for p in deepest)
    assert path["levels"] >= int(deepest[0]["levels"]) // 2
    assert sum(report["depth"]["endpoints"].values()) > report["ffs"]


def test_no_place_stops_after_yosys(capsys, tmp_path):
    """--no-place: the cell counts and the deepest paths, no Fmax, and nextpnr never runs."""
    need_fpga_tools()
    code = main(["synth", str(CONFIGS / "tiny.yaml"), "--target", "ecp5", "--no-place",
                 "--workdir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "not measured (not placed)" in out and "deepest paths" in out
    assert (tmp_path / "netlist.json").exists() and not (tmp_path / "nextpnr.log").exists()
    assert "nextpnr" not in err


def test_does_not_fit():
    """The check made on Yosys's cell counts, before place and route."""
    cells = {"SB_LUT4": 6622, "SB_DFFE": 1088, "SB_RAM40_4K": 2}
    with pytest.raises(SynthError,
                       match="tiny does not fit the ice40 up5k: 6622 LUT4 sites of 5280"):
        check_fit("tiny", "ice40", "up5k", cells)
    assert check_fit("tiny", "ice40", "hx8k", cells) == (6622, 2, 1088, 0)
    with pytest.raises(SynthError, match="3 block RAMs of 0"):
        check_fit("x", "ice40", "lp384", {"SB_LUT4": 10, "SB_RAM40_4K": 3})
    assert check_fit("la464", "ecp5", "85k", {"LUT4": 46695, "DP16KD": 96,
                                              "TRELLIS_FF": 13393}) == (46695, 96, 13393, 0)
    with pytest.raises(SynthError, match="46695 LUT4 sites of 43848"):
        check_fit("la464", "ecp5", "45k", {"LUT4": 46695, "DP16KD": 96})
    # a 16x4 LUT RAM takes six LUT4 sites that the LUT4 count leaves out
    assert check_fit("x", "ecp5", "12k", {"LUT4": 11000, "TRELLIS_DPR16X4": 182}) \
        == (11000, 0, 0, 182)
    with pytest.raises(SynthError, match="12098 LUT4 sites of 12096"):
        check_fit("x", "ecp5", "12k", {"LUT4": 11000, "TRELLIS_DPR16X4": 183})


def test_a_failed_run_on_the_command_line(capsys, monkeypatch):
    """A design that does not fit: exit 1, the reason on stderr, and with --json a JSON
    document on stdout all the same."""
    import loongtlb.testbench.synth

    def no_fit(geom, target, *args, **kwargs):
        check_fit(geom.name, target, "lp384", {"SB_LUT4": 6622})

    monkeypatch.setattr(loongtlb.testbench.synth, "synthesize", no_fit)
    code = main(["synth", str(CONFIGS / "tiny.yaml"), "--target", "ice40", "--device",
                 "lp384", "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.startswith("FAIL tiny does not fit the ice40 lp384: 6622 LUT4 sites of 384")
    assert json.loads(out) == {"config": "tiny", "target": "ice40",
                               "error": "tiny does not fit the ice40 lp384: 6622 LUT4 sites of "
                                        "384, 0 block RAMs of 0"}


def test_fmax_from_the_report_or_the_log():
    log = ("Info: Max frequency for clock 'clk': 17.78 MHz (FAIL at 100.00 MHz)\n"
           "Info: Max frequency for clock 'clk': 21.50 MHz (FAIL at 100.00 MHz)\n")
    report = {"fmax": {"clk": {"achieved": 69.04, "constraint": 100},
                       "clk2": {"achieved": 80.0, "constraint": 100}}}
    assert fmax_of(report, log) == 69.04          # routed: the report, the slowest clock
    assert fmax_of({"fmax": {}}, log) == 21.5     # placed only: the last estimate
    assert fmax_of({}, "") is None


def test_serial_wrapper_shifts_every_input_in():
    """iCE40 has no out-of-context flow: the input registers form one chain from the pin
    ``sin``; after as many cycles as there are input bits, the unit sees what was shifted."""
    import random

    from amaranth import Value
    from amaranth.sim import Simulator

    from loongtlb.rtl.wrapper import RegisteredIO
    wrapper = RegisteredIO(GEOMS["tiny"], serial=True)
    assert set(wrapper.signature.members) == {"sin", "sout"}
    unit = wrapper.unit
    ins = [Value.cast(v) for _p, member, v in unit.signature.flatten(unit) if member.flow == In]
    width = sum(len(v) for v in ins)
    bits = [random.Random(3).getrandbits(1) for _ in range(width)]
    # the bit shifted in first ends at the top of the chain
    expect = sum(b << (width - 1 - k) for k, b in enumerate(bits))

    async def bench(ctx):
        for b in bits:
            ctx.set(wrapper.sin, b)
            await ctx.tick()
        got, offset = 0, 0
        for v in ins:
            got |= ctx.get(v) << offset
            offset += len(v)
        assert got == expect

    sim = Simulator(wrapper)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_a_tool_failure_says_why(tmp_path, monkeypatch):
    """A tool that dies (here as under a memory limit, its log ending in blank lines) is
    reported with its exit status and the last line it wrote, never an empty reason."""
    import subprocess

    import loongtlb.testbench.synth

    def dies(cmd, say, stage, cwd, stdout, stderr, **_timing):
        stdout.write("reading top.il\nwasm trap: out of memory\n\n\n")
        return subprocess.CompletedProcess(cmd, 137)

    monkeypatch.setattr(loongtlb.testbench.synth, "run_with_heartbeat", dies)
    with pytest.raises(SynthError, match=r"yosys failed \(exit status 137\): wasm trap: out "
                                         r"of memory$"):
        loongtlb.testbench.synth._run("yosys", [], tmp_path, "yosys.log")


def test_a_long_step_beats_on_a_terminal(monkeypatch):
    """A step of minutes (a Verilator build, Yosys, nextpnr) says how long it has run, on a
    terminal, every few seconds."""
    import loongtlb.testbench.synth

    said = []
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    done = loongtlb.testbench.synth.run_with_heartbeat(
        [sys.executable, "-c", "import time; time.sleep(0.35)"], said.append, "step",
        every=0.1)
    assert done.returncode == 0 and len(said) >= 2 and said[0].startswith("step: ")
