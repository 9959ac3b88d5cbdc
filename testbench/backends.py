"""Choosing a backend by name: ``model``, ``rtl`` or ``cosim`` (interfaces.md section 4)."""

from __future__ import annotations

import sys

from loongtlb.sw_model.errors import InputError
from loongtlb.sw_model.geometry import Geometry

from .port import Backend, CosimBackend, ModelBackend


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def progress_bar(done: int, total: int) -> None:
    """A progress line on stderr, redrawn in place; only on a terminal."""
    if not sys.stderr.isatty():
        return
    width = 30
    filled = width * done // total
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} ops", end="",
          file=sys.stderr, flush=True)


BACKENDS = ("model", "rtl", "cosim")
SIMULATORS = ("pysim", "verilator")


def make_backend(geom: Geometry, name: str, cpus: int = 1, *, sim: str = "pysim",
                 vcd: str | None = None, unit_class=None) -> Backend:
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r} (one of {', '.join(BACKENDS)})")
    if sim not in SIMULATORS:
        raise InputError(f"unknown simulator {sim!r} (one of {', '.join(SIMULATORS)})")
    if name == "model":
        if vcd:
            raise InputError("--vcd needs the rtl or cosim backend")
        return ModelBackend(geom, cpus)
    if sim == "verilator":
        if vcd:
            raise InputError("--vcd needs --sim pysim")
        if unit_class is not None:
            raise InputError("another unit class needs --sim pysim")
        from .verilator_backend import VerilatorBackend
        rtl = VerilatorBackend(geom, cpus, progress=say)
    else:
        from .rtl_backend import RTLBackend  # Amaranth only when the RTL is wanted
        rtl = (RTLBackend(geom, cpus, vcd=vcd) if unit_class is None else
               RTLBackend(geom, cpus, vcd=vcd, unit_class=unit_class))
    if name == "rtl":
        return rtl
    return CosimBackend(ModelBackend(geom, cpus), rtl)
