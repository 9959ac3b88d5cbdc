"""Choosing a backend by name: ``model``, ``rtl`` or ``cosim`` (interfaces.md section 4)."""

from __future__ import annotations

from sw_model.errors import InputError
from sw_model.geometry import Geometry

from .port import Backend, CosimBackend, ModelBackend

BACKENDS = ("model", "rtl", "cosim")
SIMULATORS = ("pysim",)


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
    from .rtl_backend import RTLBackend  # Amaranth only when the RTL is wanted

    rtl = (RTLBackend(geom, cpus, vcd=vcd) if unit_class is None else
           RTLBackend(geom, cpus, vcd=vcd, unit_class=unit_class))
    if name == "rtl":
        return rtl
    return CosimBackend(ModelBackend(geom, cpus), rtl)
