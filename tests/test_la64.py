"""The LA64 encoder of the QEMU oracle: words checked against encodings worked by hand from
QEMU's insns.decode and binutils' loongarch-opc.c (which agree on every opcode used), and
the four-instruction constant load against the instructions' definitions."""

import random

import pytest

from loongtlb.testbench.la64 import CSR_NUMBER, Asm, R


def word(build) -> int:
    a = Asm(0x1000)
    build(a)
    (w,) = a.words()
    return w


@pytest.mark.parametrize("build, expected", [
    (lambda a: a.op("csrrd", R["a0"], CSR_NUMBER["CRMD"]), 0x04000004),
    (lambda a: a.op("csrwr", R["t0"], CSR_NUMBER["ERA"]), 0x0400182C),
    (lambda a: a.op("addi.d", R["sp"], R["sp"], -16), 0x02FFC063),
    (lambda a: a.op("lu12i.w", R["a0"], 0x12345), 0x142468A4),
    (lambda a: a.op("jirl", R["zero"], R["ra"], 0), 0x4C000020),
    (lambda a: a.op("andi", R["zero"], R["zero"], 0), 0x03400000),
    (lambda a: a.op("tlbsrch"), 0x06482800),
    (lambda a: a.op("tlbfill"), 0x06483400),
    (lambda a: a.op("ertn"), 0x06483800),
    (lambda a: a.op("invtlb", 5, R["t1"], R["t2"]), 0x06498000 | 14 << 10 | 13 << 5 | 5),
    (lambda a: a.op("syscall", 0), 0x002B0000),
    (lambda a: a.op("st.d", R["t1"], R["s1"], 8), 0x29C00000 | 8 << 10 | 24 << 5 | 13),
    (lambda a: a.op("srli.d", R["a0"], R["a0"], 8), 0x00450000 | 8 << 10 | 4 << 5 | 4),
])
def test_words(build, expected):
    assert word(build) == expected


def test_branches_resolve_forward_and_backward():
    a = Asm(0x1000)
    a.label("top")                       # 0x1000
    a.branch("b", "ahead")               # +8
    a.branch("bl", "top")                # -4
    a.label("ahead")
    a.branch("beqz", R["a0"], "top")     # -8
    a.branch("beq", R["a0"], R["a1"], "end")
    a.branch("pcaddi", R["s2"], "end")
    a.op("tlbwr")
    a.op("tlbwr")
    a.label("end")                       # 0x101c
    assert a.words()[:6] == [0x50000800, 0x57FFFFFF, 0x43FFF89F, 0x58001085,
                             0x18000000 | 3 << 5 | R["s2"], 0x06483000]


def test_out_of_range_immediates_are_refused():
    with pytest.raises(ValueError):
        word(lambda a: a.op("addi.d", 1, 1, 2048))
    with pytest.raises(ValueError):
        word(lambda a: a.op("ori", 1, 1, -1))


def _sext(value, bits):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _execute_li(words):
    """lu12i.w, ori, lu32i.d, lu52i.d as the manual defines them, on 64-bit registers."""
    mask = (1 << 64) - 1
    reg = 0
    for w in words:
        op, rd = w & 0xFE000000, w & 0x1F
        assert rd == 12
        if op == 0x14000000:
            reg = (_sext(w >> 5, 20) << 12) & mask
        elif op == 0x16000000:
            reg = (reg & 0xFFFFFFFF) | (_sext(w >> 5, 20) << 32) & mask
        elif w & 0xFFC00000 == 0x03800000:
            reg |= w >> 10 & 0xFFF
        elif w & 0xFFC00000 == 0x03000000:
            reg = (reg & ((1 << 52) - 1)) | (_sext(w >> 10, 12) << 52) & mask
        else:
            raise AssertionError(hex(w))
    return reg


def test_li_loads_every_kind_of_constant():
    rng = random.Random(5)
    values = [0, 1, (1 << 64) - 1, 0x8000_0000, 0x7FFF_FFFF, 0x9000_0000_1C00_0014,
              0xFFFF_FFFF_8000_0000] + [rng.getrandbits(64) for _ in range(300)]
    for value in values:
        a = Asm(0)
        a.li(R["t0"], value)
        assert _execute_li(a.words()) == value, hex(value)
