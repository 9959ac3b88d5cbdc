"""The ``rtl`` backend: the TLB unit in Amaranth's simulator, one unit per CPU.

Drivers call :meth:`RTLBackend.execute` as plain functions; the simulation is stepped from
there. One async testbench serves a queue of ops: it drives each op through the unit's ports
(cycle by cycle, with the handshake of :class:`rtl.TLBUnit`) and leaves the result behind;
``execute`` calls :meth:`Simulator.advance` until the result is there. No threads.

The testbench drives the clock itself (no ``add_clock``): each ``ctx.set`` settles the whole
design, and a clock process's edges cost a wait on the timeline and a settle per half
period. So an edge is one ``ctx.set`` of the clock, and the clock falls with the next
inputs the testbench sets, as do inputs that nothing in the unit acts on before the next
edge (a CSR write's ``csr_we``, a request's ``valid``). With a VCD file, edges are a
half period of simulated time apart, so that the waveform has a time axis.

Elaborating and compiling a design for the simulator is the slow part, so simulators are
kept per (geometry, CPU count) and :meth:`Simulator.reset` brings one back to the reset state
for the next backend that asks.
"""

from __future__ import annotations

from collections import deque

from amaranth import Cat, ClockDomain, Elaboratable, Module, Value
from amaranth.sim import Simulator

from loongtlb.rtl.csrfile import CSRFile
from loongtlb.rtl.layouts import Access, InsnOp
from loongtlb.rtl.unit import TLBUnit
from loongtlb.sw_model.csr import CSR, CSR_NAMES
from loongtlb.sw_model.geometry import Geometry

from .backends import Backend, e_bits_in_index_order, instruction_result, translate_result
from .trace import Op

#: an instruction that has not finished after this many cycles is a hang
_HANG_CYCLES = 1 << 18
#: the most cycles after a lookup's response that ``csr_ready`` stays low
_EXCEPTION_TICKS = CSRFile.LATENCY["exception"] - 1
#: how long the testbench waits for the next op (seconds of simulated time); the clock does
#: not run meanwhile, so an op starts in the cycle the one before it ended, as the Verilator
#: harness drives it
_IDLE_WAIT = 1e-10
#: half the clock's period, with a VCD file (seconds)
_HALF_PERIOD = 5e-7


class _Cores(Elaboratable):
    """One TLB unit per CPU, side by side in one simulation."""

    def __init__(self, geom: Geometry, cpus: int, unit_class=TLBUnit):
        self.units = [unit_class(geom, observe=True) for _ in range(cpus)]
        self.sync = ClockDomain("sync")

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = self.sync
        for i, unit in enumerate(self.units):
            m.submodules[f"cpu{i}"] = unit
        return m


class _Session:
    """A simulator with its design and the queue its testbench serves."""

    def __init__(self, geom: Geometry, cpus: int, unit_class=TLBUnit, timed: bool = False):
        """``timed``: edges a half period of simulated time apart (for a waveform)."""
        self.top = _Cores(geom, cpus, unit_class)
        self.clk = self.top.sync.clk
        self.timed = timed
        self.sim = Simulator(self.top)
        self.sim.add_testbench(self._serve)
        self.queue: deque = deque()
        self.results: deque = deque()
        self.cycles = 0
        self.in_use = False
        #: inputs (by id) -> (Cat of those inputs, each one's offset and mask)
        self._inputs: dict = {}
        #: inputs to set with the next ones, before the next edge at the latest (id of the
        #: signal: signal, value)
        self._pending: dict = {}

    def restart(self):
        self.sim.reset()
        self.queue.clear()
        self.results.clear()
        self.cycles = 0
        self._pending.clear()

    async def _serve(self, ctx):
        while True:
            if not self.queue:
                await ctx.delay(_IDLE_WAIT)
                continue
            op = self.queue.popleft()
            unit = self.top.units[op.cpu]
            start = self.cycles
            result = await self._run(ctx, unit, op)
            self.results.append((result, self.cycles - start))

    async def _tick(self, ctx):
        """One clock edge, after the inputs still pending; the clock falls with the next."""
        if self._pending:
            self._drive(ctx)
        ctx.set(self.clk, 1)
        self.cycles += 1
        self._later(self.clk, 0)
        if self.timed:
            await ctx.delay(_HALF_PERIOD)
            self._drive(ctx)
            await ctx.delay(_HALF_PERIOD)

    def _later(self, signal, value) -> None:
        """Set input ``signal`` to ``value`` with the next inputs set (before the next edge)."""
        self._pending[id(signal)] = (signal, value)

    def _drive(self, ctx, *values) -> None:
        """Set the inputs ``values`` ((signal, value) pairs, each value cut to the input's
        width as a ``ctx.set`` of that input alone would) and those pending, with one
        ``ctx.set`` of their Cat: each ``ctx.set`` settles the whole design."""
        inputs, self._pending = self._pending, {}
        for signal, value in values:
            inputs[id(signal)] = (signal, value)
        key = tuple(inputs)
        group = self._inputs.get(key)
        if group is None:
            fields, at = [], 0
            for signal, _value in inputs.values():
                width = len(Value.cast(signal))
                fields.append((at, (1 << width) - 1))
                at += width
            group = self._inputs[key] = (Cat(s for s, _v in inputs.values()), fields)
        cat, fields = group
        ctx.set(cat, sum((int(v) & mask) << at
                         for (_s, v), (at, mask) in zip(inputs.values(), fields)))

    def _read_csr(self, ctx, unit, name):
        self._drive(ctx, (unit.csr_addr, CSR[name]))
        return ctx.get(unit.csr_rdata)

    async def _run(self, ctx, unit, op: Op) -> dict:
        kind, a = op.kind, op.args
        if kind == "csrrd":
            return {"value": self._read_csr(ctx, unit, a["csr"])}
        if kind == "snapshot":
            # every CSR's read value from the observation port, without driving the read
            # port (each ctx.set re-evaluates the design; csrrd exercises the port itself)
            return {name: ctx.get(getattr(unit.obs.csr, name)) for name in CSR_NAMES}
        if kind == "valid":
            return {"bits": e_bits_in_index_order(unit.geom, ctx.get(unit.obs.e_bits))}
        if kind == "csrwr":
            self._drive(ctx, (unit.csr_addr, CSR[a["csr"]]), (unit.csr_wdata, a["value"]),
                        (unit.csr_we, 1))
            await self._tick(ctx)
            self._later(unit.csr_we, 0)
            return {}
        if kind in ("translate", "probe"):
            port = unit.lookup[a["port"]]
            self._drive(ctx, (port.va, a["va"]), (port.access, Access[a["access"].upper()].value),
                        (port.effect, kind == "translate"), (port.valid, 1))
            await self._tick(ctx)
            self._later(port.valid, 0)     # the response is from registers
            for _ in range(unit.geom.lookup_latency - 1):
                await self._tick(ctx)
            exc, pa, mat = ctx.get(port.exc).name, ctx.get(port.pa), ctx.get(port.mat)
            await self._tick(ctx)
            for _ in range(_EXCEPTION_TICKS):     # the exception's CSR writes land
                if ctx.get(unit.csr_ready):
                    break
                await self._tick(ctx)
            return translate_result(exc, pa, mat, ctx.get(unit.multi_hit))
        # a TLB instruction: valid until done, results in the done cycle
        operands = [(unit.insn_op, InsnOp[kind.upper()].value), (unit.insn_valid, 1)]
        if kind == "invtlb":
            operands += [(unit.insn_inv_op, a["inv_op"]), (unit.insn_asid, a["asid"]),
                         (unit.insn_va, a["va"])]
        self._drive(ctx, *operands)
        for cycle in range(_HANG_CYCLES):
            done = ctx.get(unit.insn_done)
            if done:
                illegal = bool(ctx.get(unit.insn_illegal))
                slot = ctx.get(unit.insn_slot)
            await self._tick(ctx)
            if cycle == 0:
                self._later(unit.insn_valid, 0)     # done, illegal, slot are registers
            if done:
                break
        else:
            raise RuntimeError(f"the RTL did not finish {kind} in {_HANG_CYCLES} cycles")
        return instruction_result(kind, illegal, slot, ctx.get(unit.multi_hit),
                                  lambda name: self._read_csr(ctx, unit, name))


_SESSIONS: dict[tuple, _Session] = {}


class RTLBackend(Backend):
    """The RTL alone, in Amaranth's simulator (``pysim``)."""

    name = "rtl"

    def __init__(self, geom: Geometry, cpus: int = 1, vcd: str | None = None,
                 unit_class=TLBUnit):
        """``unit_class``: the design to simulate (another TLB design with the same ports,
        e.g. a variant under test); :class:`rtl.TLBUnit` by default."""
        super().__init__(geom, cpus)
        key = (geom, cpus, unit_class)
        cached = _SESSIONS.get(key)
        if vcd is None and cached is not None and not cached.in_use:
            cached.restart()
            self._session = cached
        else:
            self._session = _Session(geom, cpus, unit_class, timed=vcd is not None)
            if vcd is None and cached is None:
                _SESSIONS[key] = self._session
        self._session.in_use = True
        self._vcd = None
        if vcd is not None:
            self._vcd = self._session.sim.write_vcd(vcd)
            self._vcd.__enter__()
        #: cycles the last op took (from its first input to the edge that completed it)
        self.last_cycles = 0

    @property
    def units(self):
        return self._session.top.units

    def execute(self, op: Op) -> dict:
        session = self._session
        session.queue.append(op)
        while not session.results:
            session.sim.advance()
        result, self.last_cycles = session.results.popleft()
        return result

    @property
    def cycles(self) -> int:
        return self._session.cycles

    def close(self) -> None:
        if self._vcd is not None:
            self._vcd.__exit__(None, None, None)
            self._vcd = None
        self._session.in_use = False
