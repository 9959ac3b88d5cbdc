"""Drivers (replay, kernel race, fuzz), the TLB port they speak, and the backends behind it."""
