"""Verilog and RTLIL export of the TLB unit, with the Yosys bundled with Amaranth."""

from __future__ import annotations

import os
from pathlib import Path

from loongtlb.sw_model.errors import InputError
from loongtlb.sw_model.geometry import Geometry

from .unit import TLBUnit

#: the top-level module name of every export
TOP_NAME = "loongtlb_unit"
FORMATS = {".v": "verilog", ".il": "rtlil"}


def convert(geom: Geometry, fmt: str = "verilog") -> str:
    """The unit for ``geom`` as Verilog or RTLIL text."""
    # the Yosys that ships with Amaranth, so that the output is reproducible
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    unit = TLBUnit(geom)
    if fmt == "verilog":
        from amaranth.back import verilog
        return verilog.convert(unit, name=TOP_NAME, emit_src=False)
    from amaranth.back import rtlil
    return rtlil.convert(unit, name=TOP_NAME, emit_src=False)


def format_of(path) -> str:
    suffix = Path(path).suffix
    if suffix not in FORMATS:
        raise InputError(f"{path}: unknown output format {suffix or '(none)'!r}: "
                         f"use .v for Verilog or .il for RTLIL")
    return FORMATS[suffix]
