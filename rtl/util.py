"""Small helpers: one-hot selection without signal-indexed arrays, a value a cycle later."""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib.wiring import In
from amaranth.utils import ceil_log2


def delayed(m: Module, value: Value, name: str) -> Signal:
    """``value`` one cycle later (a register named ``name``)."""
    reg = Signal.like(value, name=name)
    m.d.sync += reg.eq(value)
    return reg


def wires(m: Module, name: str) -> Module:
    """A module of its own (``m``'s submodule ``wires_{name}``) for one connection: a
    simulator evaluates a module's combinational statements again whenever one of its inputs
    changes, so in a module of its own a connection is evaluated only when its own sources
    change, and the statements beside it only when theirs do."""
    mod = m.submodules[f"wires_{name}"] = Module()
    return mod


def lowest_one(m: Module, vector: Value, name: str) -> Signal:
    """One-hot of the lowest set bit of ``vector`` (0 when none is set)."""
    # name the operand: an expression used twice is emitted twice
    source = Signal(len(vector), name=f"{name}_in")
    out = Signal(len(vector), name=name)
    m.d.comb += [source.eq(vector), out.eq(source & (-source.as_signed()).as_unsigned())]
    return out


def priority(m: Module, hits: Value, name: str) -> tuple[Signal, Value, Value, Value]:
    """Of a hit vector: the lowest hit one-hot and as an index, any hit, more than one."""
    first_onehot = lowest_one(m, hits, name)
    # more than one bit set: clearing the lowest one leaves something
    return first_onehot, onehot_index(first_onehot), hits.any(), (hits & ~first_onehot).any()


def first_one(m: Module, vector: Value, name: str) -> Signal:
    """The index of the lowest set bit of ``vector`` (0 when none is set).

    Wide vectors (the 256 STLB sets) go in blocks of 16: the lowest block holding a 1, and
    beside it the lowest 1 of every block, of which the block's index then picks one. Both
    are ``x & -x`` over 16 bits, so the depth grows with the log of the width, where
    ``x & -x`` over the whole vector would be a carry chain as long as it (and a quadratic
    netlist to export). Finding the lowest 1 of each block beside the block search, not
    after selecting the block, keeps the 16-way block mux out of the middle: la464's
    deepest path, INVTLB's search for the next occupied set, went from 20.4 to 16.1 levels
    (and no simulator instruction more).
    """
    width = len(vector)
    source = Signal(width, name=f"{name}_in")
    out = Signal(max(1, ceil_log2(width)), name=name)
    m.d.comb += source.eq(vector)
    if width <= _BLOCK:
        m.d.comb += out.eq(onehot_index(lowest_one(m, source, f"{name}_onehot")))
        return out
    pieces = _blocks(source)
    any_in = Signal(len(pieces), name=f"{name}_blocks")
    m.d.comb += any_in.eq(Cat(p.any() for p in pieces))
    which = first_one(m, any_in, f"{name}_block")
    withins = Array(first_one(m, p, f"{name}_bit{i}") for i, p in enumerate(pieces))
    m.d.comb += out.eq(Cat(withins[which], which))
    return out


#: the block width of the searches over wide vectors
_BLOCK = 16


def _blocks(vector: Value) -> list[Value]:
    """``vector`` in blocks of :data:`_BLOCK` bits, the last padded with zeros."""
    nblocks = -(-len(vector) // _BLOCK)
    padded = Cat(vector, Const(0, nblocks * _BLOCK - len(vector)))
    return [padded[i * _BLOCK:(i + 1) * _BLOCK] for i in range(nblocks)]


def lowest_one_wide(m: Module, vector: Value, name: str) -> Signal:
    """:func:`lowest_one` for wide vectors (the 256 STLB sets), in blocks of 16 as in
    :func:`first_one`: the lowest 1 of every block, kept in the lowest block holding one.
    The depth grows with the log of the width, not with the width (a carry chain)."""
    width = len(vector)
    if width <= _BLOCK:
        return lowest_one(m, vector, name)
    pieces = _blocks(vector)
    first_block = lowest_one(m, Cat(p.any() for p in pieces), f"{name}_block")
    out = Signal(width, name=name)
    m.d.comb += out.eq(Cat(Mux(first_block[i], lowest_one(m, p, f"{name}_bit{i}"), 0)
                           for i, p in enumerate(pieces))[:width])
    return out


def bit_at(vector: Value, index: Value) -> Value:
    """``vector[index]`` for a variable ``index`` below ``len(vector)``.

    Over 32 bits, a 32-bit word is chosen first (a case on the high index bits) and the bit
    within it second. It is the same mux in hardware; in a compiled simulator it is a branch
    and a word shift, where a shift of the whole vector costs one operation per word.
    """
    word = 32
    if len(vector) <= word:
        return vector.bit_select(index, 1)
    low = ceil_log2(word)
    words = Array(vector[i:i + word] for i in range(0, len(vector), word))
    return words[index[low:]].bit_select(index[:low], 1)


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

    Up to 64 outputs, a case on the index (a table lookup in a compiled simulator, where a
    comparator per output is ``n`` operations on every cycle); above that, comparators,
    which export faster. The same decoder either way once synthesized. Not ``1 << index``:
    its result is as wide as the largest shift, which a simulator computes in full.
    """
    if n <= 64:
        return case_of(m, index, {i: 1 << i for i in range(n)}, n, name)
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

