"""The TLB unit as FPGA synthesis sees it (:mod:`loongtlb.testbench.synth` runs the flow)."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from loongtlb.sw_model.geometry import Geometry

from .unit import TLBUnit
from .util import connect_ports

__all__ = ["RegisteredIO"]


class RegisteredIO(wiring.Component):
    """The TLB unit with a register on every input and output.

    With ``serial=False`` the ports are the unit's own. With ``serial=True`` there are two:
    ``sin`` shifts through the input registers, and ``sout`` is the end of a shift register
    that every output register is XORed into, so no register can be optimised away.
    """

    def __init__(self, geom: Geometry, serial: bool = False):
        self.unit = TLBUnit(geom)
        self.serial = serial
        if serial:
            super().__init__({"sin": In(1), "sout": Out(1)})
        else:
            super().__init__(dict(self.unit.signature.members))

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = unit = self.unit
        if not self.serial:
            connect_ports(m, self, unit, "sync")
            return m
        ins, outs = [], []
        for _path, member, value in unit.signature.flatten(unit):
            (ins if member.flow == In else outs).append(Value.cast(value))
        in_regs = Signal(sum(len(v) for v in ins))
        m.d.sync += in_regs.eq(Cat(self.sin, in_regs[:-1]))
        m.d.comb += Cat(*ins).eq(in_regs)
        out_regs = Signal(sum(len(v) for v in outs))
        chain = Signal(len(out_regs))
        m.d.sync += [out_regs.eq(Cat(*outs)),
                     chain.eq(Cat(Const(0, 1), chain[:-1]) ^ out_regs)]
        m.d.comb += self.sout.eq(chain[-1])
        return m
