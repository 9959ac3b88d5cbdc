"""loongtlb synth (issue #6): one real run on tiny, and the device checks.

la464 and la32r take minutes to place and route; they belong to benchmarks/fpga.py.
"""

import json

from amaranth import Shape
from amaranth.lib.wiring import In

from conftest import CONFIGS, GEOMS, need_fpga_tools
from rtl.unit import TLBUnit
from testbench.cli import main


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


def test_does_not_fit(capsys):
    need_fpga_tools()
    code = main(["synth", str(CONFIGS / "tiny.yaml"), "--target", "ice40", "--device",
                 "lp384", "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "does not fit the ice40 lp384" in err and "LUT4s of 384" in err
    assert "does not fit" in json.loads(out)["error"]
