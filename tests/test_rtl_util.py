"""The combinational helpers of rtl/util.py against plain integer arithmetic."""

import random

import pytest
from amaranth import Module, Signal
from amaranth.sim import Simulator

from loongtlb.rtl.util import (decoder, first_one, lowest_one, lowest_one_wide, onehot_index,
                               onehot_mux)


def _run(m, bench):
    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def _sparse_values(width):
    """Edge values and random vectors with few bits set (so the lowest one varies)."""
    rng = random.Random(width)
    values = [0, 1, 1 << (width - 1), (1 << width) - 1]
    values += [1 << i | 1 << (width - 1) for i in range(0, width, 7)]
    values += [rng.getrandbits(width) & rng.getrandbits(width) & rng.getrandbits(width)
               for _ in range(200)]
    return values


def _check(width, helper, expected):
    """``helper(m, vector, name)`` against ``expected(value)`` on _sparse_values(width)."""
    m = Module()
    vector = Signal(width)
    out = helper(m, vector, "out")

    async def bench(ctx):
        for value in _sparse_values(width):
            ctx.set(vector, value)
            assert ctx.get(out) == expected(value), hex(value)
    _run(m, bench)


@pytest.mark.parametrize("width", [1, 8, 64])
def test_lowest_one(width):
    _check(width, lowest_one, lambda value: value & -value)


@pytest.mark.parametrize("width", [1, 16, 17, 100, 256])
def test_lowest_one_wide(width):
    """Blocks of 16 above 16 bits (the sweep over 256 STLB sets), the last one padded."""
    _check(width, lowest_one_wide, lambda value: value & -value)


@pytest.mark.parametrize("width", [1, 5, 16, 17, 64, 100, 256])
def test_first_one(width):
    """One level up to 16 bits, blocks of 16 above (the 256-set sweep); 0 when no bit is set."""
    _check(width, first_one, lambda value: (value & -value).bit_length() - 1 if value else 0)


@pytest.mark.parametrize("n", [1, 3, 8, 64])
def test_onehot_index_and_mux(n):
    m = Module()
    onehot = Signal(n)
    values = [(i * 0x9E3779B1) & 0xFFFF for i in range(n)]
    picked = Signal(16)
    index = Signal(8)
    m.d.comb += [picked.eq(onehot_mux(onehot, values)), index.eq(onehot_index(onehot))]

    async def bench(ctx):
        ctx.set(onehot, 0)
        assert ctx.get(picked) == 0
        for i in range(n):
            ctx.set(onehot, 1 << i)
            assert ctx.get(picked) == values[i] and ctx.get(index) == i
    _run(m, bench)


@pytest.mark.parametrize("n", [1, 5, 64, 100])
def test_decoder(n):
    """A shift up to 64 outputs, comparators above: one-hot, and 0 for an index past the end."""
    m = Module()
    index = Signal(8)
    out = decoder(m, index, n, "dec")

    async def bench(ctx):
        for i in range(256):
            ctx.set(index, i)
            assert ctx.get(out) == (1 << i if i < n else 0), i
    _run(m, bench)
