"""The LoongArch TLB in Amaranth 0.5: layouts, the shared match block, and the TLB unit."""

from .unit import TLBUnit  # noqa: F401
