"""The ``rtl`` backend compiled by Verilator: the exported Verilog of the same TLB unit.

The unit is wrapped in :class:`~testbench.verilator_top.SimTop` (the unit's ports plus its E
bits and whole CSR file, for cosim's checks), exported with Amaranth's Yosys, and compiled
with the C++ harness ``harness.cpp`` into one executable per geometry. ``geometry.h``,
generated here, gives the harness the port accessors of that geometry and the trace format's
tables (op kinds, expect keys, CSR and exception names), taken from the Python code so that
they exist once. The executable is cached under ``$XDG_CACHE_HOME/loongtlb/verilator`` by a
hash of everything it is built from (geometry, Python sources, harness, Verilator's files),
so a second run starts at once.

Two ways in, both driving each op cycle by cycle exactly as the pysim backend does:

- A subprocess with a binary protocol on its stdin/stdout (chosen over a shared library: no
  ABI to get wrong, and a crash cannot take Python down). A batch is a u32 count and that
  many 24-byte requests (``kind, cpu, a, b: u8; c: u32; x, y: u64``, little-endian); the
  answer is a u64 word count, then for each request a u64 count and that many u64 words.
  :meth:`VerilatorBackend.execute_batch` sends whole batches; cosim sends one op at a time,
  because the model checks each before the next.
- :func:`replay_file`: the harness parses a trace file itself, runs it and checks every
  ``expect`` inside, with no Python per op. Its parser takes the plain form of the format and
  hands anything else back ("fallback"), and Python's parser then decides, so both paths
  accept the same traces and report errors in the same words.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

from loongtlb.sw_model.csr import ACCESSES, CSR, CSR_NAMES, EXC_NAMES
from loongtlb.sw_model.errors import InputError, show_value
from loongtlb.sw_model.geometry import NAME_PATTERN, Geometry

from .backends import Backend, e_bits_in_index_order, instruction_result, translate_result
from .replay import ReplayResult, where
from .trace import (_BOOL_KEYS, EXPECT_KEYS, MAX_CPUS, OPS, OUTPUT_CSRS, Op, check_expect,
                    parse_line)

_ROOT = Path(__file__).resolve().parent.parent
#: every Python source the model and geometry.h are made from, as it was when this process
#: imported this module: the cache key describes the code that builds the model, even if the
#: files change during a run. Amaranth itself is imported only to build, so that a cached
#: model starts without it (a quarter of a second).
_SOURCES = tuple(path.read_text() for path in (
    Path(__file__), Path(__file__).with_name("verilator_top.py"),
    *sorted((_ROOT / "rtl").glob("*.py")), _ROOT / "sw_model" / "csr.py",
    _ROOT / "sw_model" / "geometry.py", _ROOT / "testbench" / "trace.py"))

_REQ = struct.Struct("<BBBBIQQ")
_KIND = {"reset": 0, "csrrd": 1, "csrwr": 2, "insn": 3, "translate": 4, "valid": 5,
         "snapshot": 6}
TOP = "simtop"
HARNESS = Path(__file__).with_name("harness.cpp")
#: every key a result can carry, in the harness's order ("value" is csrrd's)
RESULT_KEYS = ("value",) + tuple(dict.fromkeys(k for keys in EXPECT_KEYS.values()
                                               for k in keys))
_FIELDS = ("op", "cpu", "expect", "csr", "value", "va", "asid", "inv_op", "access", "port")


@functools.cache
def _codes() -> tuple[dict[str, int], dict[str, int]]:
    """The RTL's access and instruction codes by trace name (Amaranth enums, so imported only
    when a model is built or a batch is sent)."""
    from loongtlb.rtl.layouts import Access, InsnOp
    return ({a: Access[a.upper()].value for a in ACCESSES},
            {op.name.lower(): op.value for op in InsnOp})


def _vname(name: str) -> str:
    """Verilator's C++ name for a port: a double underscore becomes ``___05F``."""
    return name.replace("__", "___05F")


def _c_strings(names) -> str:
    return "{" + ", ".join(json.dumps(n) for n in names) + "}"


def _mask(bits) -> str:
    return f"0x{sum(1 << b for b in bits):x}u"


@functools.cache
def _exception_ticks() -> int:
    """Ticks from a lookup's response to the landing of its exception's CSR writes (the
    RTL's latency data; imported when first needed, as :func:`_codes`)."""
    from loongtlb.rtl.csrfile import CSRFile
    return CSRFile.LATENCY["exception"]


def _geometry_header(geom: Geometry) -> str:
    """geometry.h for ``geom``: tables of the trace format and the port accessors."""
    ops = list(OPS)
    key_id = {k: i for i, k in enumerate(RESULT_KEYS)}
    field_id = {f: i for i, f in enumerate(_FIELDS)}
    classes = {"csrrd": 0, "csrwr": 1, "translate": 2}

    def fields_mask(kind, required):
        names = set(OPS[kind])
        if not required:
            names |= {"op", "cpu", "expect"} | ({"port"} if kind == "translate" else set())
        return _mask(field_id[n] for n in names)

    def table(ctype, name, values):
        return f"static const {ctype} {name}[] = {{{', '.join(str(v) for v in values)}}};"

    access_codes, insn_codes = _codes()
    insn = [insn_codes.get(k, 0) for k in ops]
    lines = [
        f"// generated by loongtlb for geometry {geom.name}; see testbench/verilator_backend.py",
        "#pragma once",
        "#include <cstdint>",
        "#include <vector>",
        f"#define GRLEN {geom.grlen}",
        f"#define LOOKUP_PORTS {geom.lookup_ports}",
        f"#define LOOKUP_LATENCY {geom.lookup_latency}",
        f"#define EXCEPTION_TICKS {_exception_ticks()}",
        f"#define MAX_CPUS {MAX_CPUS}",
        "enum { CLASS_CSRRD, CLASS_CSRWR, CLASS_TRANSLATE, CLASS_INSN };",
        "enum { " + ", ".join(f"REQ_{k.upper()} = {v}" for k, v in _KIND.items()) + " };",
        f"enum {{ N_OPS = {len(ops)}, OP_TLBFILL = {ops.index('tlbfill')} }};",
        f"static const char* const OP_NAMES[] = {_c_strings(ops)};",
        table("uint8_t", "OP_CLASS", [classes.get(k, 3) for k in ops]),
        table("uint8_t", "OP_INSN", insn),
        table("uint8_t", "OP_HAS_RESULT", [int(k in EXPECT_KEYS) for k in ops]),
        table("uint32_t", "OP_OUTPUT_CSRS",
              [_mask(key_id[c] for c in OUTPUT_CSRS.get(k, ())) for k in ops]),
        table("uint32_t", "OP_EXPECT_KEYS",
              [_mask(key_id[c] for c in EXPECT_KEYS.get(k, ())) for k in ops]),
        table("uint32_t", "OP_FIELDS_ALLOWED", [fields_mask(k, False) for k in ops]),
        table("uint32_t", "OP_FIELDS_REQUIRED", [fields_mask(k, True) for k in ops]),
        "enum { " + ", ".join(f"KEY_{k.upper()}" for k in RESULT_KEYS)
        + f", N_KEYS = {len(RESULT_KEYS)} }};",
        f"static const char* const KEY_NAMES[] = {_c_strings(RESULT_KEYS)};",
        f"static const uint32_t BOOL_KEYS = {_mask(key_id[k] for k in _BOOL_KEYS)};",
        table("uint32_t", "KEY_CSR_ADDR", [CSR.get(k, 0) for k in RESULT_KEYS]),
        "enum { " + ", ".join(f"FIELD_{f.upper()}" for f in _FIELDS)
        + f", N_FIELDS = {len(_FIELDS)} }};",
        f"static const char* const FIELD_NAMES[] = {_c_strings(_FIELDS)};",
        f"enum {{ N_CSRS = {len(CSR_NAMES)}, N_EXCS = {len(EXC_NAMES)} }};",
        f"static const char* const CSR_NAMES[] = {_c_strings(CSR_NAMES)};",
        table("uint32_t", "CSR_ADDRS", [CSR[n] for n in CSR_NAMES]),
        f"static const char* const EXC_NAMES[] = {_c_strings(EXC_NAMES)};",
        f"static const char* const ACCESS_NAMES[] = {_c_strings(ACCESSES)};",
        table("uint8_t", "ACCESS_CODES", [access_codes[a] for a in ACCESSES]),
    ]
    # port accessors: a switch over the lookup ports; ``body(f)`` names port p's field f
    def per_port(signature, body):
        lines.extend([f"static inline void {signature} {{", "  switch (port) {"])
        for p in range(geom.lookup_ports):
            lines.append(f"  case {p}: "
                         + body(lambda f, p=p: "t->" + _vname(f"lookup__{p}__{f}")) + " break;")
        lines.extend(["  }", "}"])

    per_port("set_lookup(Vsimtop* t, uint32_t port, uint64_t va, uint32_t access, bool effect, "
             "bool valid)", lambda v: f"{v('va')} = va; {v('access')} = access; "
             f"{v('effect')} = effect; {v('valid')} = valid;")
    per_port("get_lookup(Vsimtop* t, uint32_t port, uint64_t* exc, uint64_t* pa, "
             "uint64_t* mat)", lambda v: f"*exc = {v('exc')}; *pa = {v('pa')}; "
             f"*mat = {v('mat')};")
    n_words = (geom.e_bits_width + 31) // 32
    if geom.e_bits_width <= 64:
        valid = "out.push_back((uint64_t)t->e_bits);"
    else:
        valid = (f"for (int i = 0; i < {n_words}; i += 2) {{ uint64_t w = t->e_bits[i]; "
                 f"if (i + 1 < {n_words}) w |= (uint64_t)t->e_bits[i + 1] << 32; "
                 "out.push_back(w); }")
    if geom.grlen == 64:
        csr_all = ("for (int i = 0; i < N_CSRS; i++) "
                   "out.push_back(t->csr_all[2 * i] | (uint64_t)t->csr_all[2 * i + 1] << 32);")
    else:
        csr_all = "for (int i = 0; i < N_CSRS; i++) out.push_back(t->csr_all[i]);"
    lines.append("static inline void get_valid(Vsimtop* t, std::vector<uint64_t>& out) "
                 f"{{ {valid} }}")
    lines.append("static inline void get_csrs(Vsimtop* t, std::vector<uint64_t>& out) "
                 f"{{ {csr_all} }}")
    return "\n".join(lines) + "\n"


def _verilator() -> str:
    path = shutil.which("verilator")
    if path is None:
        raise InputError("--sim verilator: verilator is not installed "
                         "(Debian: apt-get install verilator)")
    return path


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "loongtlb" / "verilator"


def build(geom: Geometry, progress=None) -> Path:
    """The compiled harness for ``geom``, built once and cached."""
    verilator = _verilator()
    # the installed Verilator by its files' sizes and times, not by ``--version`` (a Perl
    # start-up of 70 ms on every run)
    version = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns)
               for f in (Path(verilator), Path(verilator).with_name("verilator_bin"))
               if f.exists()]
    harness = HARNESS.read_text()
    digest = hashlib.sha256()
    fields = {k: v for k, v in vars(geom).items() if k != "source"}
    for part in (repr(sorted(fields.items())), repr(version), harness, *_SOURCES):
        digest.update(part.encode())
    cache = _cache_root()
    root = _in_cache(cache, f"{geom.name}-{digest.hexdigest()[:16]}")
    exe = root / "obj_dir" / "sim"
    if exe.exists():
        return exe
    if progress:
        progress(f"building the Verilator model of {geom.name} (once per geometry)")
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    from amaranth.back import verilog

    from .verilator_top import SimTop
    tmp = _in_cache(cache, root.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / f"{TOP}.v").write_text(verilog.convert(SimTop(geom), name=TOP, emit_src=False))
    (tmp / "geometry.h").write_text(_geometry_header(geom))
    (tmp / "harness.cpp").write_text(harness)
    cmd = [verilator, "--cc", "--exe", "--build", "-j", str(os.cpu_count() or 2),
           "--top-module", TOP, "-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-CASEINCOMPLETE",
           # -O1 reaches only the code run once (Verilator's OPT_SLOW is empty); the
           # per-cycle code is built at -O2 where Verilator's OPT_FAST default is -Os: 7 %
           # fewer instructions per op on la464 for 10 s more build
           "--x-assign", "fast", "--x-initial", "fast", "-O3", "-CFLAGS", "-O1",
           "-MAKEFLAGS", "OPT_FAST=-O2",
           "-CFLAGS", f"-I{tmp}", f"{TOP}.v", "harness.cpp", "-o", "sim"]
    from .synth import run_with_heartbeat
    proc = run_with_heartbeat(cmd, progress or (lambda message: None),
                              f"building the Verilator model of {geom.name}", cwd=tmp,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"verilator failed for {geom.name}:\n{proc.stderr[-3000:]}")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    prune(cache, geom.name)
    return exe


def _in_cache(cache: Path, name: str) -> Path:
    """``cache / name``, checked to be an entry right inside the cache whatever ``name``
    holds (the geometry's name is validated on loading; this makes sure of it where files
    are written and deleted)."""
    path = cache / name
    if not NAME_PATTERN.fullmatch(name[:64]) or "/" in name or path.parent != cache:
        raise InputError(f"{show_value(name)} cannot name a build in the Verilator cache")
    return path


def prune(cache: Path, name: str, keep: int = 3) -> None:
    """Keep the ``keep`` newest builds of geometry ``name`` in ``cache`` (each source
    version makes a new one; old ones are tens of megabytes and never used again)."""
    builds = sorted((d for d in cache.iterdir()
                     if d.name.startswith(f"{name}-") and d.is_dir() and not d.is_symlink()
                     and d.name[len(name) + 1:].isalnum()),
                    key=lambda d: d.stat().st_mtime, reverse=True)
    for old in builds[keep:]:
        assert old.parent == cache and old.resolve().parent == cache.resolve(), old
        shutil.rmtree(old, ignore_errors=True)


class _Process:
    def __init__(self, exe: Path, cpus: int):
        self.proc = subprocess.Popen([str(exe), str(cpus)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, bufsize=0)
        self.in_use = False

    def call(self, requests: list[tuple]) -> list[tuple[int, ...]]:
        """Run a batch of requests ``(kind, cpu, a, b, c, x, y)``; each one's answer words."""
        data = struct.pack("<I", len(requests)) + b"".join(_REQ.pack(*r) for r in requests)
        fd = self.proc.stdin.fileno()
        while data:
            data = data[os.write(fd, data):]
        total = struct.unpack("<Q", self._read(8))[0]
        words = struct.unpack(f"<{total}Q", self._read(8 * total))
        answers, i = [], 0
        while i < total:
            count = words[i]
            answers.append(words[i + 1:i + 1 + count])
            i += 1 + count
        return answers

    def _read(self, n: int) -> bytes:
        parts, fd = [], self.proc.stdout.fileno()
        while n:
            chunk = os.read(fd, n)
            if not chunk:
                raise RuntimeError("the Verilator model exited")
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)


_PROCESSES: dict[tuple, _Process] = {}


class VerilatorBackend(Backend):
    """The RTL alone, compiled by Verilator; same results as the pysim backend."""

    name = "rtl"

    def __init__(self, geom: Geometry, cpus: int = 1, progress=None):
        super().__init__(geom, cpus)
        # one cached process per (geometry, CPUs), reset for each new backend; a second
        # backend while the first is open, or after the process died, gets its own
        key = (geom, cpus)
        proc = _PROCESSES.get(key)
        if proc is not None and not proc.in_use and proc.proc.poll() is None:
            proc.call([(_KIND["reset"], 0, 0, 0, 0, 0, 0)])
        else:
            proc = _Process(build(geom, progress), cpus)
            if key not in _PROCESSES or _PROCESSES[key].proc.poll() is not None:
                _PROCESSES[key] = proc
        self._proc = proc
        proc.in_use = True
        self.last_cycles = 0
        self._cycles = 0

    @staticmethod
    def _requests(op: Op) -> list[tuple]:
        """The harness requests for one op: ``(kind, cpu, a, b, c, x, y)``."""
        a, kind, cpu = op.args, op.kind, op.cpu
        if kind in ("csrrd", "csrwr"):
            return [(_KIND[kind], cpu, 0, 0, 0, CSR[a["csr"]], a.get("value", 0))]
        if kind in ("translate", "probe"):
            effect = 4 if kind == "translate" else 0
            access = _codes()[0][a["access"]]
            return [(_KIND["translate"], cpu, a["port"], access | effect, 0, a["va"], 0)]
        if kind in ("valid", "snapshot"):
            return [(_KIND[kind], cpu, 0, 0, 0, 0, 0)]
        insn = (_KIND["insn"], cpu, _codes()[1][kind], a.get("inv_op", 0),
                a.get("asid", 0), a.get("va", 0), 0)
        # then read the CSRs the instruction writes
        return [insn] + [(_KIND["csrrd"], cpu, 0, 0, 0, CSR[name], 0)
                         for name in OUTPUT_CSRS.get(kind, ())]

    def _result(self, op: Op, answers) -> dict:
        kind = op.kind
        if kind == "csrrd":
            self._tick(0)
            return {"value": answers[0][0]}
        if kind == "csrwr":
            self._tick(1)
            return {}
        if kind in ("translate", "probe"):
            exc, pa, mat, multi = answers[0]
            # the response's edge, and one more while an exception's CSR writes land
            landing = kind == "translate" and EXC_NAMES[exc] != "NONE"
            self._tick(self.geom.lookup_latency + 1 + landing * (_exception_ticks() - 1))
            return translate_result(EXC_NAMES[exc], pa, mat, multi)
        if kind == "valid":
            return {"bits": e_bits_in_index_order(
                self.geom, sum(w << (64 * i) for i, w in enumerate(answers[0])))}
        if kind == "snapshot":
            return dict(zip(CSR_NAMES, answers[0], strict=True))
        cycles, illegal, slot, multi = answers[0]
        self._tick(cycles)
        csrs = dict(zip(OUTPUT_CSRS.get(kind, ()), (w[0] for w in answers[1:]), strict=True))
        return instruction_result(kind, illegal, slot, multi, csrs.__getitem__)

    def _tick(self, cycles: int) -> None:
        self.last_cycles = cycles
        self._cycles += cycles

    @property
    def cycles(self) -> int:
        return self._cycles

    def execute(self, op: Op) -> dict:
        return self.execute_batch([op])[0]

    def execute_batch(self, ops: list[Op]) -> list[dict]:
        """Run ops in one exchange with the harness."""
        requests, spans = [], []
        for op in ops:
            reqs = self._requests(op)
            spans.append(len(reqs))
            requests += reqs
        answers = self._proc.call(requests)
        results, i = [], 0
        for op, n in zip(ops, spans, strict=True):
            results.append(self._result(op, answers[i:i + n]))
            i += n
        return results

    def close(self) -> None:
        self._proc.in_use = False


def replay_file(geom: Geometry, path, exe: Path):
    """Replay a trace file inside the harness (``exe``, from :func:`build`); a ReplayResult,
    or None when the harness hands the trace back to Python's parser."""
    source = os.fspath(path)                 # named in messages as given, like Python's path
    path = Path(path)
    if not path.is_file():
        return None
    proc = subprocess.run([str(exe), "--replay", str(path)], capture_output=True, text=True)
    words = proc.stdout.split()
    if proc.returncode != 0 or not words:
        raise RuntimeError(f"the Verilator model failed on {path}: {proc.stderr[-2000:]}")
    if words[0] == "fallback":
        return None
    if words[0] == "ok":
        return ReplayResult(True, int(words[1]), int(words[2]), cpus=int(words[3]),
                            cycles=int(words[4]))
    index, line, met, cpus, present = (int(w) for w in words[1:6])
    values = [int(w) for w in words[6:]]
    with open(path) as f:
        text = next(itertools.islice(f, line - 1, None))
    op = parse_line(json.loads(text), f"{source}:{line}", geom, line)
    result = {}
    for i, key in enumerate(RESULT_KEYS):
        if present >> i & 1:
            value = values[i]
            result[key] = (bool(value) if key in _BOOL_KEYS else
                           EXC_NAMES[value] if key == "exc" else value)
    miss = check_expect(op, result)
    if miss is None:
        raise RuntimeError(f"{path}:{line}: the harness reported a miss that Python does not see")
    return ReplayResult(False, index, met, f"{where(op, source)}: {miss}", cpus)
