"""The deepest register-to-register paths of a mapped netlist, counted in logic levels.

nextpnr names a critical path only after routing, which takes hours for la464; the depth of
the mapped logic names the long paths in seconds, from Yosys's netlist alone, and is what
the RTL controls (routing adds roughly a constant per level on a given device).

A level is one LUT4, or the entry into a carry chain. The wide-function muxes that join LUTs
within a slice (ECP5's PFUMX and L6MUX21) count half, and each carry hop along a chain a
sixteenth: a 32-bit carry chain costs about as much as one LUT. Paths start at a register's
output or a block RAM's read data and end at a register's, RAM's or block RAM's inputs. A
LUT RAM's read is combinational: its read address leads to its data.

Yosys names a flip-flop after a signal its output drives, so a path's two ends carry RTL
names: ``unit.sweep_todo_TRELLIS_FF_Q_94`` is reported as ``unit.sweep_todo[94]`` (the bit
number is Yosys's count, not always the signal's bit), and a register may be named by a
port of the block that reads it (``unit.lookup1.mtlb_regs__tags`` is the MTLB's tags as the
match of lookup port 1 sees them). The logic between the ends has names Yosys made up, and
is summed by cell type.
"""

from __future__ import annotations

import functools
import re
from collections import Counter, defaultdict

#: cell type -> its weight, or {input port: weight} (other inputs weigh 1); every input
#: leads to every output
_WEIGHTS = {"PFUMX": 0.5, "L6MUX21": 0.5, "CCU2C": {"CIN": 1 / 16}, "SB_CARRY": {"CI": 1 / 16}}
#: cells whose outputs start paths and whose inputs end them (clocks aside)
_SEQUENTIAL = re.compile(r"^(TRELLIS_FF|SB_DFF\w*|DP16KD|PDPW16KD|SB_RAM40_4K\w*)$")
#: LUT RAMs: the read address leads to the data; the write ports end paths
_LUT_RAMS = {"TRELLIS_DPR16X4": ("RAD", "DO")}
_CLOCKS = re.compile(r"^(CLK|WCK|CLKA|CLKB|RCLK|WCLK|C)$")


def _top(netlist: dict) -> dict:
    """The design's module: the one with the most cells (the others are cell libraries)."""
    return max(netlist["modules"].values(), key=lambda m: len(m.get("cells", {})))


def _register_name(cell: str) -> str:
    """``unit.x_TRELLIS_FF_Q_12`` -> ``unit.x[12]``: a register bit by its signal's name."""
    m = re.match(r"^(.*?)_(?:TRELLIS_FF|SB_DFF\w*)_Q(?:_(\d+))?$", cell)
    return f"{m.group(1)}[{m.group(2) or 0}]" if m else cell


def _group(name: str) -> str:
    """A register's or RAM's name without bit, port or numbers: the bits of one register,
    the ways of the STLB, the lookup ports are one row of the report each."""
    name = re.sub(r"\[\d+\]$|(\.\d+)*\.[A-Z]+\d*$", "", name)
    return re.sub(r"\d+", "#", name)


def depth_report(netlist: dict, count: int = 5) -> dict:
    """The depth of a mapped netlist (Yosys's JSON): ``{"paths": [...], "endpoints": {...}}``.

    ``paths``: the ``count`` deepest paths, one per pair of (start register, end register or
    RAM port), deepest first: ``{"levels", "from", "to", "ends", "cells"}``, where ``ends``
    is how many endpoints that pair has at that depth or less and ``cells`` counts the
    deepest path's cells by type. ``endpoints``: how many endpoints end at each whole
    number of levels, deepest first.
    """
    cells = _top(netlist)["cells"]
    fanin = defaultdict(list)           # bit -> [(input bit, weight, cell type)]
    ends = []                           # (bit, where)
    start_of = {}                       # bit -> the register or RAM port it comes from

    def bits(cell, port):
        return [b for b in cell["connections"].get(port, []) if isinstance(b, int)]

    for name, cell in cells.items():
        kind, dirs = cell["type"], cell.get("port_directions", {})
        ins = [p for p, d in dirs.items() if d == "input" and not _CLOCKS.match(p)]
        outs = [p for p, d in dirs.items() if d == "output"]
        if _SEQUENTIAL.match(kind):
            # a flip-flop is named by its register; a block RAM by the port
            register = _register_name(name) if len(outs) == 1 else None
            for p in outs:
                for b in bits(cell, p):
                    start_of[b] = register or f"{name}.{p}"
            ends += [(b, register or f"{name}.{p}") for p in ins for b in bits(cell, p)]
            continue
        if kind in _LUT_RAMS:
            rad, do = _LUT_RAMS[kind]
            ends += [(b, f"{name}.{p}") for p in ins if p != rad for b in bits(cell, p)]
            ins, outs = [rad], [do]
        weight = _WEIGHTS.get(kind, 1.0)
        for p in ins:
            w = weight.get(p, 1.0) if isinstance(weight, dict) else weight
            for q in outs:
                for b in bits(cell, q):
                    fanin[b] += [(a, w, kind) for a in bits(cell, p)]

    depth: dict[int, tuple[float, tuple | None]] = {}
    arrival = functools.partial(_arrival, fanin, depth)
    ranked = sorted(((arrival(b), b, where) for b, where in ends), key=lambda r: -r[0])
    rows: dict[tuple[str, str], dict] = {}
    for levels, bit, where in ranked:
        kinds, b = Counter(), bit
        while depth[b][1] is not None:
            b, kind = depth[b][1]
            kinds[kind] += 1
        src = start_of.get(b, "an input")
        key = (_group(src), _group(where))
        if key in rows:
            rows[key]["ends"] += 1
        elif len(rows) < count:
            rows[key] = {"levels": round(levels, 2), "from": src, "to": where, "ends": 1,
                         "cells": dict(kinds.most_common())}
    histogram = Counter(int(levels) for levels, _b, _w in ranked)
    return {"paths": list(rows.values()),
            "endpoints": {k: histogram[k] for k in sorted(histogram, reverse=True)}}


def _arrival(fanin: dict, depth: dict, root: int) -> float:
    """The logic levels from a path's start to bit ``root``, filling ``depth`` (bit ->
    (levels, the previous bit and its cell)) for every bit on the way."""
    # post-order without recursion (netlists are deeper than Python's stack); a loop,
    # which a synchronous design has none of, is cut where the search meets it again
    stack, open_ = [(root, False)], set()
    while stack:
        b, expanded = stack.pop()
        if b in depth:
            continue
        if not expanded:
            open_.add(b)
            stack.append((b, True))
            stack += [(a, False) for a, _w, _k in fanin.get(b, ())
                      if a not in depth and a not in open_]
            continue
        open_.discard(b)
        best = (0.0, None)
        for a, w, kind in fanin.get(b, ()):
            d = depth.get(a, (0.0, None))[0] + w
            if d > best[0]:
                best = (d, (a, kind))
        depth[b] = best
    return depth[root][0]
