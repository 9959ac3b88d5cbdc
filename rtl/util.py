"""Small combinational helpers: one-hot selection without signal-indexed arrays."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal, Value, unsigned
from amaranth.utils import ceil_log2


def lowest_one(vector: Value) -> Value:
    """One-hot of the lowest set bit of ``vector`` (0 when none is set)."""
    width = len(vector)
    return (vector & (-vector.as_signed()).as_unsigned()[:width])[:width]


def onehot_index(onehot: Value) -> Value:
    """The index of the set bit of a one-hot vector (an OR tree per index bit)."""
    n = len(onehot)
    bits = max(1, ceil_log2(n))
    out = []
    for b in range(bits):
        terms = [onehot[i] for i in range(n) if (i >> b) & 1]
        out.append(Cat(*terms).any() if terms else Const(0, 1))
    return Cat(*out)


def onehot_mux(onehot: Value, values: list[Value]) -> Value:
    """``values[i]`` where ``onehot[i]`` is set (0 when none is), as an AND-OR tree."""
    width = max(len(Value.cast(v)) for v in values)
    result = Const(0, width)
    for i, v in enumerate(values):
        result = result | (Value.cast(v) & onehot[i].replicate(width))
    return result


def case_of(m: Module, selector: Value, table: dict[int, int | Value], width: int,
            name: str, default=0) -> Signal:
    """A signal that is ``table[selector]`` (a small constant-case mux)."""
    out = Signal(unsigned(width), name=name)
    with m.Switch(selector):
        for key, value in table.items():
            with m.Case(key):
                m.d.comb += out.eq(value)
        with m.Default():
            m.d.comb += out.eq(default)
    return out
