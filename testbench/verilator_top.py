"""The top module the Verilator backend compiles: the TLB unit and what cosim checks.

Kept apart from :mod:`testbench.verilator_backend` because it needs Amaranth, which that
module imports only to build a model, never to run a cached one.
"""

from __future__ import annotations

from amaranth import Cat, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from loongtlb.rtl.unit import TLBUnit
from loongtlb.sw_model.csr import CSR_NAMES
from loongtlb.sw_model.geometry import Geometry


class SimTop(wiring.Component):
    """The TLB unit with its observation port as two flat outputs: ``e_bits`` (every slot's
    E bit, as the port has them) and ``csr_all`` (every CSR, in CSR_NAMES order)."""

    def __init__(self, geom: Geometry):
        self.unit = TLBUnit(geom, observe=True)
        members = {k: v for k, v in self.unit.signature.members.items() if k != "obs"}
        members["e_bits"] = Out(geom.e_bits_width)
        members["csr_all"] = Out(geom.grlen * len(CSR_NAMES))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = unit = self.unit
        for path, member, value in unit.signature.flatten(unit):
            if path[0] == "obs":
                continue
            port = self
            for step in path:
                port = getattr(port, step) if isinstance(step, str) else port[step]
            m.d.comb += value.eq(port) if member.flow == In else port.eq(value)
        m.d.comb += [self.e_bits.eq(unit.obs.e_bits),
                     self.csr_all.eq(Cat(getattr(unit.obs.csr, name) for name in CSR_NAMES))]
        return m
