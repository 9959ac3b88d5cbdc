"""Pure-Python side of loongtlb: geometry, CSR layouts, the reference TLB, the kernel model.

Nothing here imports Amaranth.
"""
