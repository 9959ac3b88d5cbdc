"""Small combinational helpers: one-hot selection without signal-indexed arrays."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib.wiring import In
from amaranth.utils import ceil_log2


def lowest_one(m: Module, vector: Value, name: str) -> Signal:
    """One-hot of the lowest set bit of ``vector`` (0 when none is set)."""
    width = len(vector)
    # name the operand: an expression used twice is emitted twice
    source = Signal(width, name=f"{name}_in")
    out = Signal(width, name=name)
    m.d.comb += source.eq(vector)
    if width <= 64:
        m.d.comb += out.eq(source & (-source.as_signed()).as_unsigned())
        return out
    # Wider (the 256 STLB sets): x & -x would make every bit depend on all bits below it, a
    # quadratic netlist that is slow to export, and a chain of "any lower bit set" is 256
    # logic levels deep. Instead, in blocks of 16: the lowest block holding a 1, then the
    # lowest 1 within each block; both are x & -x over at most 16 bits.
    block = 16
    blocks = [source[i:i + block] for i in range(0, width, block)]
    any_in = Signal(len(blocks), name=f"{name}_blocks")
    m.d.comb += any_in.eq(Cat(b.any() for b in blocks))
    first_block = Signal(len(blocks), name=f"{name}_block")
    m.d.comb += first_block.eq(any_in & (-any_in.as_signed()).as_unsigned())
    m.d.comb += out.eq(Cat(Mux(first_block[j], (b & (-b.as_signed()).as_unsigned())[:len(b)], 0)
                           for j, b in enumerate(blocks)))
    return out


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
    # Mux, not AND with onehot[i].replicate(width): a replicated expression is emitted
    # once per bit, which multiplies the netlist (and the export time) by the width.
    # A balanced OR tree: a chain would put n ORs on the path of the first value.
    terms = [Mux(onehot[i], v, 0) for i, v in enumerate(values)]
    if not terms:
        return Const(0, 1)
    while len(terms) > 1:
        terms = [terms[i] | terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


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


def decoder(m: Module, index: Value, n: int, name: str) -> Signal:
    """One-hot of ``index`` over ``n`` outputs (all 0 when ``index >= n``).

    Comparators, not ``1 << index``: Amaranth treats every output bit of a variable shift
    as depending on every input bit, which makes export of wide vectors slow.
    """
    out = Signal(n, name=name)
    m.d.comb += out.eq(Cat(index == i for i in range(n)))
    return out


def connect_ports(m: Module, outer, inner, domain: str = "comb") -> None:
    """Drive every port of component ``inner`` from the same-named port of ``outer`` (inputs)
    and the other way round (outputs), in ``domain``: ``comb`` passes them through, ``sync``
    puts a register on each."""
    for path, member, value in inner.signature.flatten(inner):
        port = outer
        for step in path:
            port = getattr(port, step) if isinstance(step, str) else port[step]
        if member.flow == In:
            m.d[domain] += value.eq(port)
        else:
            m.d[domain] += port.eq(value)
