"""Running programs under QEMU: one run, a checked run of ops, TLBFILL's choices under
-seed 1, and the replay backend."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass

from loongtlb.sw_model.errors import InputError
from loongtlb.sw_model.geometry import Geometry
from loongtlb.sw_model.tlb import ReferenceTLB

from ..backends import Backend
from ..la64 import CSR_NUMBER, Asm, R
from ..trace import Op
from .check import Checker
from .program import ALIAS, BIOS, DONE, UART, Program, State, emit_entry, emit_poweroff
from .rules import Divergence, check_geometry

QEMU_BINARY = "qemu-system-loongarch64"


def qemu_path() -> str:
    path = shutil.which(QEMU_BINARY)
    if path is None:
        raise InputError(f"{QEMU_BINARY} is not installed (Debian: apt install "
                         f"qemu-system-misc)")
    return path


class Stopped(Exception):
    """QEMU did not reach the program's end: ``words`` is what it wrote before."""

    def __init__(self, words: list[int], why: str):
        super().__init__(why)
        self.words = words


def run_image(image: bytes, timeout: float) -> list[int]:
    """Run one program under QEMU; the words it wrote."""
    with tempfile.TemporaryDirectory(prefix="loongtlb-qemu-") as tmp:
        prog, out = os.path.join(tmp, "prog.bin"), os.path.join(tmp, "out.bin")
        with open(prog, "wb") as f:
            f.write(image)
        cmd = [qemu_path(), "-M", "virt", "-cpu", "la464-loongarch-cpu", "-m", "2G",
               "-display", "none", "-monitor", "none", "-serial", f"file:{out}",
               "-no-reboot", "-bios", prog, "-seed", "1"]
        why = None
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            why = f"QEMU did not come back within {timeout:.0f} s"
        with open(out, "rb") as f:
            data = f.read(64 << 20)
    words = [int.from_bytes(data[i:i + 8], "little") for i in range(0, len(data) - 7, 8)]
    if why is None and (not words or words[-1] != DONE):
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        why = (f"QEMU stopped before the program's end (exit status {proc.returncode}"
               f"{': ' + tail[-1] if tail else ''})")
    if why is not None:
        raise Stopped(words, why)
    return words


def stopped_at(program: "Program", words: list[int]) -> Op:
    """The op a program was at when QEMU stopped writing."""
    pos = 0
    for step in program.steps:
        pos += len(step.layout)
        if pos > len(words):
            return step.op
    return program.steps[-1].op


@dataclass
class Outcome:
    """A checked run: the model's result per op, the rules that explained differences."""

    results: list[dict]
    rules: Counter
    unobserved: Counter


def run_ops(geom: Geometry, ops: list[Op], start: State | None = None,
            timeout: float | None = None) -> tuple[Outcome, State]:
    """Run one CPU's ops on QEMU and on the model from ``start`` (the reset state by
    default), and check them; the outcome and the state after them. Raises
    :class:`Divergence` at the first unexplained difference."""
    check_geometry(geom)
    start = start or State.reset(geom)
    timeout = timeout or 5 + len(ops) / 500
    program = Program(geom, ops, start,
                      fill_choices(sum(op.kind == "tlbfill" for op in ops)))
    try:
        words = run_image(program.image, timeout)
    except Stopped as err:
        op = stopped_at(program, err.words)
        why = str(err)
        if op.kind == "translate" and op.args["access"] == "fetch":
            why += (" from this fetch (QEMU 7.2 never returns from a PNX or PPI on a fetch, "
                    "Q16, and the model predicted none here)")
        raise Divergence(op, why, "the op's end", "no end") from None
    checker = Checker(geom, program, words)
    checker.check()
    end = State(program.model, program.window, program.plv)
    return Outcome([s.result for s in program.steps], checker.rules, checker.unobserved), end


#: QEMU's TLBFILL choices under -seed 1, in order: the random number each TLBFILL draws,
#: modulo 64 (an MTLB entry; modulo 8 of it, the STLB way)
_CHOICES: list[int] = []


def fill_choices(n: int) -> list[int]:
    """The first ``n`` TLBFILL choices, learnt once by a program that does nothing else."""
    if len(_CHOICES) < n:
        _CHOICES[:] = discover(max(n, 2 * len(_CHOICES), 4096))
    return _CHOICES[:n]


def discover(n: int) -> list[int]:
    """n TLBFILLs into the MTLB (PS 21 while STLBPS is 14), each found by TLBSRCH, reported
    and cleared by INVTLB 0."""
    a, r = Asm(ALIAS | BIOS), R
    emit_entry(a)
    a.label("start")
    a.li(r["s0"], ALIAS | UART)
    for name, value in (("STLBPS", 14), ("TLBEHI", 0x4000_0000), ("TLBELO0", 1 << 12 | 1),
                        ("TLBELO1", 1 << 12 | 1), ("TLBIDX", 21 << 24), ("ASID", 0)):
        a.li(r["t0"], value)
        a.op("csrwr", r["t0"], CSR_NUMBER[name])
    a.li(r["s1"], n)
    a.label("again")
    a.op("tlbfill")
    a.op("tlbsrch")
    a.op("csrrd", r["a0"], CSR_NUMBER["TLBIDX"])
    a.branch("bl", "putq")
    a.op("invtlb", 0, r["zero"], r["zero"])
    a.li(r["t0"], 21 << 24)
    a.op("csrwr", r["t0"], CSR_NUMBER["TLBIDX"])
    a.op("addi.d", r["s1"], r["s1"], -1)
    a.branch("bnez", r["s1"], "again")
    a.li(r["a0"], DONE)
    a.branch("bl", "putq")
    emit_poweroff(a)
    words = run_image(a.image(), 5 + n / 2000)
    if len(words) != n + 1 or any(w >> 31 & 1 or w & 0xFFF < 2048 for w in words[:n]):
        raise RuntimeError("QEMU's TLBFILL choices could not be read back")
    return [(w & 0xFFF) - 2048 for w in words[:n]]


class QemuBackend(Backend):
    """QEMU beside the model: each op runs on both and is checked (the rules of
    docs/spec/qemu.md); the model's results are returned. A batch is one QEMU run per CPU,
    which starts from the state the CPU's ops so far left (QEMU starts in 0.1 s)."""

    name = "qemu"

    def __init__(self, geom: Geometry, cpus: int = 1):
        check_geometry(geom)
        qemu_path()
        super().__init__(geom, cpus)
        self.states = [State.reset(geom) for _ in range(cpus)]
        self.rules: Counter = Counter()
        self.unobserved: Counter = Counter()
        self.runs = 0

    def execute(self, op: Op) -> dict:
        return self.execute_batch([op])[0]

    def execute_batch(self, ops: list[Op]) -> list[dict]:
        results: dict[int, dict] = {}
        for cpu in sorted({op.cpu for op in ops}):
            mine = [(i, op) for i, op in enumerate(ops) if op.cpu == cpu]
            outcome, self.states[cpu] = run_ops(self.geom, [op for _, op in mine],
                                                self.states[cpu])
            self.runs += 1
            self.rules += outcome.rules
            self.unobserved += outcome.unobserved
            for (i, _), result in zip(mine, outcome.results):
                results[i] = result
        return [results[i] for i in range(len(ops))]

    def reference(self, cpu: int) -> ReferenceTLB:
        return self.states[cpu].model

    def summary(self) -> str:
        return f"QEMU: {self.runs} run{'s' if self.runs != 1 else ''}; " + \
            format_rules(self.rules, self.unobserved)


def format_rules(rules: Counter, unobserved: Counter) -> str:
    """The rules that explained a difference (how often), and what QEMU did not let the
    check see."""
    explained = ", ".join(f"{k} x{v}" for k, v in sorted(rules.items(),
                                                         key=lambda kv: int(kv[0][1:])))
    unseen = ", ".join(f"{k} x{v}" for k, v in sorted(unobserved.items()))
    return (f"differences explained (docs/spec/qemu.md): {explained or 'none'}; "
            f"not observable: {unseen or 'none'}")
