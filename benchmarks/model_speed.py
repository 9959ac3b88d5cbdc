"""Reference-model speed on la464: translations and TLBFILLs per second.

    python benchmarks/model_speed.py [CONFIG]

The model is the oracle for long random runs, so it has a speed target (issue #2): at least
20,000 translations per second on la464.
"""

import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loongtlb.sw_model.geometry import load_geometry  # noqa: E402
from loongtlb.sw_model.tlb import ReferenceTLB  # noqa: E402


def main(config=ROOT / "configs" / "la464.yaml"):
    geom = load_geometry(config)
    tlb = ReferenceTLB(geom)
    rng = random.Random(1)
    tlb.csrwr("TLBIDX", 14 << 24)
    pages = [rng.randrange(1 << 20) << 15 for _ in range(4096)]
    start = time.perf_counter()
    for va in pages:
        tlb.csrwr("TLBEHI", va)
        tlb.csrwr("TLBELO0", (va >> 2) | 0x13)
        tlb.csrwr("TLBELO1", (va >> 2) | 0x4013)
        tlb.tlbfill()
    fills = len(pages) / (time.perf_counter() - start)
    # a few MTLB entries too, so every lookup scans a populated MTLB
    tlb.csrwr("TLBIDX", 21 << 24)
    for i in range(48):
        tlb.csrwr("TLBEHI", (0x100 + i) << 22)
        tlb.tlbfill()
    vas = [rng.choice(pages) + rng.randrange(1 << 15) for _ in range(50000)]
    start = time.perf_counter()
    for va in vas:
        tlb.translate(va, "load")
    translations = len(vas) / (time.perf_counter() - start)
    print(f"{geom.name}: {translations:,.0f} translations/s, {fills:,.0f} TLBFILLs/s "
          f"(CSR writes included)")


if __name__ == "__main__":
    main(*sys.argv[1:])
