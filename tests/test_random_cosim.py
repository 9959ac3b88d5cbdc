"""Seeded constrained-random operation sequences, RTL and model in lock step.

Every op's result and, after any op that can change a CSR, the whole CSR file are compared;
a disagreement fails the test with the op and both values. ``--random-ops N`` runs longer.
"""

from collections import Counter

import pytest

from loongtlb.testbench.backends import make_backend
from loongtlb.testbench.backends import Mismatch
from loongtlb.testbench.randomops import RandomOps
from loongtlb.testbench.trace import format_op

from conftest import GEOMS, need_verilator


@pytest.mark.parametrize("sim", ["pysim", "verilator"])
@pytest.mark.parametrize("name, seed", [("tiny", 1), ("mtlb6", 2), ("odd", 3), ("la32r", 4)])
def test_random_cosim(request, name, seed, sim):
    n = request.config.getoption("--random-ops")
    geom = GEOMS[name]
    if sim == "verilator":
        need_verilator()
        n *= 5                                   # compiled: more operations for the time
    backend = make_backend(geom, "cosim", sim=sim)
    gen = RandomOps(geom, seed)
    outcomes = Counter()
    try:
        for i in range(n):
            op = gen.next()
            try:
                result = backend.execute(op)
            except Mismatch as err:
                pytest.fail(f"{name} seed {seed} op {i}: {format_op(op, False)}: {err}")
            if op.kind == "translate":
                outcomes[result["exc"]] += 1
            elif op.kind == "tlbfill":
                outcomes["fill illegal" if result["illegal"] else "fill"] += 1
            elif op.kind == "tlbsrch":
                outcomes["srch miss" if result["TLBIDX"] >> 31 else "srch hit"] += 1
    finally:
        backend.close()
    # the sequence did what it is for: hits, misses, every page exception, a full bank
    model = backend.model.tlbs[0]
    assert outcomes["NONE"] > 20 and outcomes["TLBR"] > 20, outcomes
    assert {"PIL", "PIS", "PIF", "PME", "PPI"} <= set(outcomes), outcomes
    if not geom.is_la32:
        assert {"PNR", "PNX"} <= set(outcomes), outcomes
    assert outcomes["srch hit"] and outcomes["srch miss"] and outcomes["fill illegal"]
    if geom.policy == "lfsr":
        assert model.lfsr != geom.seed, "no TLBFILL found its bank full"
    elif name == "odd":
        assert model.rr["stlb"] or model.rr["mtlb"], "no TLBFILL found its bank full"
