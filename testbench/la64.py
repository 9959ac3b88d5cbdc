"""A small LA64 assembler: the instructions the QEMU oracle's programs need, encoded as
QEMU's ``target/loongarch/insns.decode`` and binutils' ``opcodes/loongarch-opc.c`` give them
(the two agree on every opcode used here), with labels resolved in a second pass.

Registers are numbers (``R`` names them by their ABI names); CSRs by number (``CSR``).
"""

from __future__ import annotations

from loongtlb.sw_model.csr import CSR

__all__ = ["Asm", "R", "CSR_NUMBER"]

#: ABI register names -> numbers
R = {"zero": 0, "ra": 1, "tp": 2, "sp": 3,
     **{f"a{i}": 4 + i for i in range(8)}, **{f"t{i}": 12 + i for i in range(9)},
     "fp": 22, **{f"s{i}": 23 + i for i in range(9)}}

#: CSR numbers: the unit's (sw_model.csr) and those a bare-metal program needs besides
#: (QEMU target/loongarch/cpu-csr.h, the LoongArch manual's table)
CSR_NUMBER = {**CSR, "PRMD": 0x1, "ECFG": 0x4, "ERA": 0x6, "EENTRY": 0xC, "TLBRENTRY": 0x88,
              "TLBRPRMD": 0x8F, "DMW0": 0x180}

# opcodes with every operand field 0
_R3 = {"add.d": 0x00108000, "sub.d": 0x00118000, "and": 0x00148000, "or": 0x00150000}
_I12 = {"addi.d": 0x02C00000, "lu52i.d": 0x03000000, "andi": 0x03400000, "ori": 0x03800000,
        "ld.b": 0x28000000, "ld.w": 0x28800000, "ld.d": 0x28C00000, "st.b": 0x29000000,
        "st.w": 0x29800000, "st.d": 0x29C00000, "ld.bu": 0x2A000000}
_UNSIGNED_I12 = {"andi", "ori"}
_SHIFT = {"slli.d": 0x00410000, "srli.d": 0x00450000}
_I20 = {"lu12i.w": 0x14000000, "lu32i.d": 0x16000000, "pcaddi": 0x18000000}
_NONE = {"tlbclr": 0x06482000, "tlbflush": 0x06482400, "tlbsrch": 0x06482800,
         "tlbrd": 0x06482C00, "tlbwr": 0x06483000, "tlbfill": 0x06483400,
         "ertn": 0x06483800}
_B16 = {"beq": 0x58000000, "bne": 0x5C000000, "bltu": 0x68000000, "bgeu": 0x6C000000}
_B21 = {"beqz": 0x40000000, "bnez": 0x44000000}
_B26 = {"b": 0x50000000, "bl": 0x54000000}


def _signed(value: int, bits: int, what: str) -> int:
    if not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
        raise ValueError(f"{what}: {value} does not fit in {bits} signed bits")
    return value & ((1 << bits) - 1)


def _unsigned(value: int, bits: int, what: str) -> int:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{what}: {value} does not fit in {bits} bits")
    return value


class Asm:
    """Instructions appended in order from ``base`` (the address the code runs at); branch
    targets may be labels defined later. ``words()`` resolves them."""

    def __init__(self, base: int):
        self.base = base
        self._words: list[int] = []
        self._labels: dict[str, int] = {}
        self._fixups: list[tuple[int, str, str]] = []        # (word index, kind, label)

    # ---- layout -----------------------------------------------------------------------------
    @property
    def here(self) -> int:
        return self.base + 4 * len(self._words)

    def label(self, name: str) -> None:
        if name in self._labels:
            raise ValueError(f"label {name} defined twice")
        self._labels[name] = self.here

    def address(self, name: str) -> int:
        return self._labels[name]

    def word(self, value: int) -> None:
        self._words.append(value & 0xFFFFFFFF)

    def words(self) -> list[int]:
        out = list(self._words)
        for i, kind, name in self._fixups:
            if name not in self._labels:
                raise ValueError(f"label {name} is not defined")
            offs = (self._labels[name] - (self.base + 4 * i)) >> 2
            if kind == "b16":
                out[i] |= _signed(offs, 16, name) << 10
            elif kind == "b21":
                offs = _signed(offs, 21, name)
                out[i] |= (offs & 0xFFFF) << 10 | offs >> 16
            elif kind == "b26":
                offs = _signed(offs, 26, name)
                out[i] |= (offs & 0xFFFF) << 10 | offs >> 16
            else:                                              # pcaddi: si20 words
                out[i] |= _signed(offs, 20, name) << 5
        return out

    def image(self) -> bytes:
        return b"".join(w.to_bytes(4, "little") for w in self.words())

    # ---- instructions -----------------------------------------------------------------------
    def op(self, name: str, *args) -> None:
        """One instruction by its assembler name, operands in assembler order."""
        if name in _NONE:
            self.word(_NONE[name])
        elif name in _R3:
            rd, rj, rk = args
            self.word(_R3[name] | rk << 10 | rj << 5 | rd)
        elif name in _I12:
            rd, rj, imm = args
            field = _unsigned(imm, 12, name) if name in _UNSIGNED_I12 else \
                _signed(imm, 12, name)
            self.word(_I12[name] | field << 10 | rj << 5 | rd)
        elif name in _SHIFT:
            rd, rj, amount = args
            self.word(_SHIFT[name] | _unsigned(amount, 6, name) << 10 | rj << 5 | rd)
        elif name in _I20:
            rd, imm = args
            self.word(_I20[name] | _signed(imm, 20, name) << 5 | rd)
        elif name in ("csrrd", "csrwr"):
            rd, csr = args
            self.word(0x04000000 | _unsigned(csr, 14, name) << 10
                      | (name == "csrwr") << 5 | rd)
        elif name == "invtlb":
            op, rj, rk = args
            self.word(0x06498000 | rk << 10 | rj << 5 | _unsigned(op, 5, name))
        elif name in ("syscall", "ibar", "dbar"):
            base = {"syscall": 0x002B0000, "ibar": 0x38728000, "dbar": 0x38720000}[name]
            self.word(base | _unsigned(args[0] if args else 0, 15, name))
        elif name == "jirl":
            rd, rj, offs = args
            self.word(0x4C000000 | _signed(offs, 16, name) << 10 | rj << 5 | rd)
        else:
            raise ValueError(f"no such instruction here: {name}")

    def branch(self, name: str, *args) -> None:
        """``b``/``bl`` label; ``beqz``/``bnez`` rj, label; ``beq``/``bne``/``bltu``/``bgeu``
        rj, rd, label; ``pcaddi`` rd, label (rd = the label's address)."""
        *regs, target = args
        index = len(self._words)
        if name in _B26:
            self.word(_B26[name])
            self._fixups.append((index, "b26", target))
        elif name in _B21:
            (rj,) = regs
            self.word(_B21[name] | rj << 5)
            self._fixups.append((index, "b21", target))
        elif name in _B16:
            rj, rd = regs
            self.word(_B16[name] | rj << 5 | rd)
            self._fixups.append((index, "b16", target))
        elif name == "pcaddi":
            (rd,) = regs
            self.word(_I20["pcaddi"] | rd)
            self._fixups.append((index, "pcaddi", target))
        else:
            raise ValueError(f"no such branch here: {name}")

    def li(self, rd: int, value: int) -> None:
        """rd = any 64-bit value, in four instructions."""
        value &= (1 << 64) - 1
        hi20 = (value >> 12) & 0xFFFFF
        self.op("lu12i.w", rd, hi20 - (1 << 20) if hi20 >> 19 else hi20)
        self.op("ori", rd, rd, value & 0xFFF)
        mid = (value >> 32) & 0xFFFFF
        self.op("lu32i.d", rd, mid - (1 << 20) if mid >> 19 else mid)
        top = value >> 52
        self.op("lu52i.d", rd, rd, top - (1 << 12) if top >> 11 else top)
