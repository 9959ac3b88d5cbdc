"""testbench.depth: the deepest register-to-register paths of a mapped netlist, on netlists made
here cell by cell, where the answer can be counted by hand."""

from loongtlb.testbench.depth import depth_report

FF = {"CLK": "input", "DI": "input", "LSR": "input", "Q": "output"}
LUT = {"A": "input", "B": "input", "C": "input", "D": "input", "Z": "output"}
CARRY = {"A0": "input", "B0": "input", "C0": "input", "D0": "input", "A1": "input",
         "B1": "input", "C1": "input", "D1": "input", "CIN": "input", "COUT": "output",
         "S0": "output", "S1": "output"}


def netlist(cells):
    """A Yosys JSON netlist of ``cells``: name -> (type, directions, {port: [bits]})."""
    library = {"modules": {"TRELLIS_FF": {}, "LUT4": {}}}
    library["modules"]["top"] = {"cells": {
        name: {"type": kind, "port_directions": dirs, "connections": conns}
        for name, (kind, dirs, conns) in cells.items()}}
    return library


def ff(d, q):
    return ("TRELLIS_FF", FF, {"CLK": [1], "DI": [d], "LSR": ["0"], "Q": [q]})


def lut(z, *ins):
    return ("LUT4", LUT, {p: [b] for p, b in zip("ABCD", ins, strict=False)} | {"Z": [z]})


def test_levels_are_counted_from_register_to_register():
    # a_q -> LUT -> LUT -> LUT -> b; a_q -> LUT -> c; c_q -> LUT (with b's chain) -> b
    report = depth_report(netlist({
        "unit.a_TRELLIS_FF_Q_3": ff(90, 10),
        "l1": lut(11, 10), "l2": lut(12, 11, 30), "l3": lut(13, 12),
        "unit.b_TRELLIS_FF_Q": ff(13, 20),
        "l4": lut(14, 10),
        "unit.c_TRELLIS_FF_Q_1": ff(14, 30),
    }))
    first, second = report["paths"][:2]
    assert first == {"levels": 3.0, "from": "unit.a[3]", "to": "unit.b[0]", "ends": 1,
                     "cells": {"LUT4": 3}}
    assert (second["levels"], second["from"], second["to"]) == (1.0, "unit.a[3]", "unit.c[1]")
    # endpoints: b at 3 levels, c at 1, a's own input (from nowhere) at 0
    assert report["endpoints"] == {3: 1, 1: 1, 0: 1}


def test_a_carry_chain_costs_little_per_bit():
    """Entering a carry chain is a level; each hop along it a sixteenth of one."""
    cells = {"unit.x_TRELLIS_FF_Q": ff(99, 10)}
    carry_in = None
    for i in range(16):
        conns = {"A0": [10], "B0": ["0"], "COUT": [100 + i], "S0": [200 + i], "S1": [300 + i]}
        if carry_in is not None:
            conns["CIN"] = [carry_in]
        cells[f"c{i}"] = ("CCU2C", CARRY, conns)
        carry_in = 100 + i
    cells["unit.y_TRELLIS_FF_Q"] = ff(115, 20)     # the chain's last carry out
    report = depth_report(netlist(cells))
    top = report["paths"][0]
    assert (top["from"], top["to"]) == ("unit.x[0]", "unit.y[0]")
    assert top["levels"] == round(1 + 15 / 16, 2)
    assert top["cells"] == {"CCU2C": 16}


def test_one_row_per_pair_of_registers_and_the_rest_counted():
    """The bits of one register, or of registers that differ only by a number (the ways,
    the ports), are one row; ``ends`` counts them."""
    cells = {}
    for i in range(4):
        cells[f"unit.src{i % 2}_TRELLIS_FF_Q_{i}"] = ff(900 + i, 10 + i)
        cells[f"l{i}"] = lut(20 + i, 10 + i)
        cells[f"unit.dst_TRELLIS_FF_Q_{i}"] = ff(20 + i, 30 + i)
    report = depth_report(netlist(cells), count=5)
    rows = [p for p in report["paths"] if p["levels"] > 0]
    assert len(rows) == 1 and rows[0]["ends"] == 4 and rows[0]["levels"] == 1.0


def test_a_lut_ram_read_is_a_path_and_its_write_an_end():
    ram = {"DI": "input", "DO": "output", "RAD": "input", "WAD": "input", "WCK": "input",
           "WRE": "input"}
    report = depth_report(netlist({
        "unit.addr_TRELLIS_FF_Q": ff(1000, 10),
        "l": lut(11, 10),
        "mem": ("TRELLIS_DPR16X4", ram, {"RAD": [11], "DO": [12], "WAD": [11], "DI": [10],
                                         "WRE": [10], "WCK": [1]}),
        "unit.data_TRELLIS_FF_Q": ff(12, 20),
    }))
    top = report["paths"][0]
    assert (top["levels"], top["from"], top["to"]) == (2.0, "unit.addr[0]", "unit.data[0]")
    assert any(p["to"] == "mem.WAD" and p["levels"] == 1.0 for p in report["paths"])
