"""TLB geometry: the YAML file of interfaces.md section 1, validated into a frozen dataclass.

Everything derived from the geometry (entry counts, the Index width and the Index <-> slot
mapping of decisions.md D2, field widths, PRCFG3) is computed here once, so the reference model
and the RTL read the same numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import InputError, decode_utf8, open_input, reading, show_value

__all__ = ["Geometry", "Slot", "load_geometry", "geometry_from_dict"]

POLICIES = ("lfsr", "round_robin")


@dataclass(frozen=True)
class Slot:
    """One physical TLB slot. ``bank`` is "stlb" or "mtlb"; ``way``/``set`` for the STLB,
    ``entry`` for the MTLB."""

    bank: str
    way: int = 0
    set: int = 0
    entry: int = 0


@dataclass(frozen=True)
class Geometry:
    """A validated TLB geometry. Build it with :func:`load_geometry` or
    :func:`geometry_from_dict`; the constructor itself does not validate."""

    name: str
    #: register width: 64 (LA64 CSR layouts) or 32 (LA32)
    grlen: int
    #: virtual / physical address bits
    valen: int
    palen: int
    #: width of CSR.ASID.ASID and of the entries' ASID
    asid_bits: int
    #: STLB ways and sets (both 0 for an MTLB-only TLB)
    stlb_ways: int
    stlb_sets: int
    #: fully associative MTLB entries
    mtlb_entries: int
    #: STLBPS at reset
    stlb_page_shift: int
    #: the PS values the TLB accepts, ascending
    page_shifts: tuple[int, ...]
    #: replacement policy when no slot is free (D10) and the LFSR seed
    policy: str
    seed: int
    #: number of translation ports
    lookup_ports: int
    #: cycles from a lookup request to its result: 1, or 2 with a register after the match
    lookup_latency: int = 1
    #: TLBFILL outside the refill context (D4): "manual" writes E = NOT TLBIDX.NE, "ignore"
    #: writes E = 1 whatever NE holds (QEMU)
    tlbfill_ne: str = "manual"
    source: str = field(default="<dict>", compare=False)

    # ---- derived sizes ---------------------------------------------------------------------
    @property
    def has_stlb(self) -> bool:
        return self.stlb_ways > 0

    @property
    def stlb_entries(self) -> int:
        return self.stlb_ways * self.stlb_sets

    @property
    def total_entries(self) -> int:
        return self.stlb_entries + self.mtlb_entries

    @property
    def e_bits_pitch(self) -> int:
        """Bits per STLB set where the RTL's checkers observe every E bit (``e_bits`` of its
        observation port): the set's ways', padded to whole bytes."""
        return 8 * -(-self.stlb_ways // 8)

    @property
    def e_bits_width(self) -> int:
        """The width of that observation: the STLB's sets, then the MTLB's entries."""
        return self.stlb_sets * self.e_bits_pitch + self.mtlb_entries if self.stlb_ways \
            else self.mtlb_entries

    def e_bit_position(self, index: int) -> int:
        """Where the E bit of the slot at ``index`` is in that observation: the STLB's set by
        set, as the RTL keeps them, then the MTLB's in Index order."""
        if index < self.stlb_entries:
            return self.stlb_e_bit_position(index)
        return self.mtlb_e_bits_offset + index

    def stlb_e_bit_position(self, index):
        """:meth:`e_bit_position` of an STLB slot: way ``w`` of set ``s`` at ``s *
        e_bits_pitch + w`` (arithmetic only, for an int or an RTL expression alike)."""
        return (index % self.stlb_sets) * self.e_bits_pitch + index // self.stlb_sets

    @property
    def mtlb_e_bits_offset(self) -> int:
        """:meth:`e_bit_position` of an MTLB slot is this plus its Index."""
        return self.e_bits_width - self.total_entries

    @property
    def set_bits(self) -> int:
        """log2 of the STLB sets (0 without an STLB)."""
        return max(self.stlb_sets, 1).bit_length() - 1

    @property
    def index_bits(self) -> int:
        """Width of TLBIDX.Index (D2)."""
        return max(1, (self.total_entries - 1).bit_length())

    @property
    def vppn_bits(self) -> int:
        """VPPN = VA[VALEN-1:13]."""
        return self.valen - 13

    @property
    def ppn_bits(self) -> int:
        """PPN = PA[PALEN-1:12]."""
        return self.palen - 12

    @property
    def is_la32(self) -> bool:
        return self.grlen == 32

    @property
    def prcfg3(self) -> int:
        """PRCFG3: TLBType [3:0], MTLB entries-1 [11:4], STLB ways-1 [19:12], log2 sets [25:20]."""
        value = (2 if self.has_stlb else 1) | (self.mtlb_entries - 1) << 4
        if self.has_stlb:
            value |= (self.stlb_ways - 1) << 12 | self.set_bits << 20
        return value

    @property
    def entry_bits(self) -> int:
        """Bits one entry stores: E, ASID, G, VPPN, PS (MTLB only), and two halves."""
        half = 1 + 1 + 2 + 2 + self.ppn_bits + (0 if self.is_la32 else 3)
        return 1 + self.asid_bits + 1 + self.vppn_bits + 2 * half

    # ---- Index <-> slot (D2) ---------------------------------------------------------------
    def slot_of_index(self, index: int) -> Slot | None:
        """The slot TLBIDX.Index names, or None when it is out of range (D18)."""
        if index < self.stlb_entries:
            return Slot("stlb", way=index // self.stlb_sets, set=index % self.stlb_sets)
        if index < self.total_entries:
            return Slot("mtlb", entry=index - self.stlb_entries)
        return None

    def index_of_stlb(self, way: int, set_: int) -> int:
        return way * self.stlb_sets + set_

    def index_of_mtlb(self, entry: int) -> int:
        return self.stlb_entries + entry

    def stlb_set_of(self, va: int, stlbps: int) -> int:
        """The STLB set a VA selects (D1)."""
        return (va >> (stlbps + 1)) & (self.stlb_sets - 1) if self.has_stlb else 0

    def summary(self) -> list[str]:
        """The lines ``loongtlb info`` prints."""
        lines = [f"name {self.name}",
                 f"grlen {self.grlen}  valen {self.valen}  palen {self.palen}  "
                 f"asid_bits {self.asid_bits}"]
        if self.has_stlb:
            lines.append(f"STLB {self.stlb_ways} ways x {self.stlb_sets} sets = "
                         f"{self.stlb_entries} entries, Index 0..{self.stlb_entries - 1} "
                         f"(way * {self.stlb_sets} + set)")
        else:
            lines.append("STLB none (MTLB-only)")
        lines.append(f"MTLB {self.mtlb_entries} entries, Index {self.stlb_entries}.."
                     f"{self.total_entries - 1}")
        lines.append(f"total {self.total_entries} entries, TLBIDX.Index {self.index_bits} bits")
        lines.append(f"entry {self.entry_bits} bits (+6 PS bits per MTLB entry), storage "
                     f"{self.total_entries * self.entry_bits + 6 * self.mtlb_entries} bits")
        lines.append(f"page shifts {', '.join(map(str, self.page_shifts))}; "
                     f"STLBPS at reset {self.stlb_page_shift}")
        seed = f" seed 0x{self.seed:04x}" if self.policy == "lfsr" else ""
        lines.append(f"replacement {self.policy}{seed}; lookup ports {self.lookup_ports}, "
                     f"latency {self.lookup_latency} cycle{'s' if self.lookup_latency > 1 else ''}")
        lines.append(f"tlbfill_ne {self.tlbfill_ne} (TLBFILL outside the refill context: "
                     + ("E = NOT TLBIDX.NE)" if self.tlbfill_ne == "manual" else "E = 1)"))
        lines.append(f"PRCFG3 0x{self.prcfg3:08x}")
        return lines


# ---- loading and validation -------------------------------------------------------------------

_TOP_KEYS = {"name", "grlen", "valen", "palen", "asid_bits", "stlb", "mtlb", "stlb_page_shift",
             "page_shifts", "replacement", "lookup_ports", "lookup_latency", "tlbfill_ne"}
_REQUIRED = _TOP_KEYS - {"grlen", "stlb", "lookup_latency", "tlbfill_ne"}
#: the readings of TLBFILL outside the refill context with TLBIDX.NE set (D4)
TLBFILL_NE = ("manual", "ignore")


class _Checker:
    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, message: str):
        raise InputError(f"{self.source}: {key}: {message}")

    def keys(self, mapping, where: str, allowed: set[str], required: set[str]):
        if not isinstance(mapping, dict):
            self.fail(where, f"expected a mapping, got {_show(mapping)}")
        for key in mapping:
            if key not in allowed:
                self.fail(f"{where}.{key}" if where != "<top>" else str(key), "unknown key")
        for key in sorted(required - set(mapping)):
            self.fail(f"{where}.{key}" if where != "<top>" else key, "missing required key")

    def integer(self, value, key: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"expected an integer, got {_show(value)}")
        if not lo <= value <= hi:
            self.fail(key, f"{_show(value)} is out of range {lo}..{hi}")
        return value


def _show(value) -> str:
    return show_value(value)


#: a geometry's name names files (the Verilator build cache): a plain file name, no path
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


def geometry_from_dict(data, source: str = "<dict>") -> Geometry:
    """Validate a parsed YAML document; raise :class:`InputError` naming the key on error."""
    c = _Checker(source)
    c.keys(data, "<top>", _TOP_KEYS, _REQUIRED)
    name = data["name"]
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        c.fail("name", f"{_show(name)}: expected 1 to 64 letters, digits, '_', '.' or '-', "
               "not starting with '.' or '-'")
    grlen = data.get("grlen", 64)
    if isinstance(grlen, bool) or grlen not in (32, 64):
        c.fail("grlen", f"must be 32 or 64, got {_show(grlen)}")
    if grlen == 32:
        valen = c.integer(data["valen"], "valen", 32, 64)
        if valen != 32:
            c.fail("valen", f"grlen 32 needs valen 32, got {valen}")
        palen = c.integer(data["palen"], "palen", 32, 36)
    else:
        valen = c.integer(data["valen"], "valen", 32, 64)
        palen = c.integer(data["palen"], "palen", 32, 60)
    asid_bits = c.integer(data["asid_bits"], "asid_bits", 1, 10)

    ways = sets = 0
    if "stlb" in data:
        c.keys(data["stlb"], "stlb", {"ways", "sets"}, {"ways", "sets"})
        ways = c.integer(data["stlb"]["ways"], "stlb.ways", 1, 256)
        sets = c.integer(data["stlb"]["sets"], "stlb.sets", 1, 65536)
        if sets & (sets - 1):
            c.fail("stlb.sets", f"{sets} is not a power of two")
    c.keys(data["mtlb"], "mtlb", {"entries"}, {"entries"})
    entries = c.integer(data["mtlb"]["entries"], "mtlb.entries", 1, 256)
    if ways * sets + entries > 65536:
        c.fail("stlb", f"{ways * sets + entries} entries in all; at most 65536")

    shifts = data["page_shifts"]
    if not isinstance(shifts, list) or not shifts:
        c.fail("page_shifts", f"expected a non-empty list of integers, got {_show(shifts)}")
    for i, ps in enumerate(shifts):
        c.integer(ps, f"page_shifts[{i}]", 12, valen - 1)
    if len(set(shifts)) != len(shifts):
        c.fail("page_shifts", "lists a page shift twice")
    stlbps = c.integer(data["stlb_page_shift"], "stlb_page_shift", 12, valen - 1)
    if stlbps not in shifts:
        c.fail("stlb_page_shift", f"{stlbps} is not in page_shifts")

    c.keys(data["replacement"], "replacement", {"policy", "seed"}, {"policy"})
    policy = data["replacement"]["policy"]
    if policy not in POLICIES:
        c.fail("replacement.policy", f"must be lfsr or round_robin, got {_show(policy)}")
    seed = data["replacement"].get("seed")
    if policy == "lfsr":
        if seed is None:
            c.fail("replacement.seed", "missing required key (the lfsr policy needs a seed)")
        seed = c.integer(seed, "replacement.seed", 1, 0xFFFF)
    elif seed is not None:
        seed = c.integer(seed, "replacement.seed", 1, 0xFFFF)
    ports = c.integer(data["lookup_ports"], "lookup_ports", 1, 16)
    latency = c.integer(data.get("lookup_latency", 1), "lookup_latency", 1, 3)
    tlbfill_ne = data.get("tlbfill_ne", "manual")
    if tlbfill_ne not in TLBFILL_NE:
        c.fail("tlbfill_ne", f"must be manual or ignore, got {_show(tlbfill_ne)}")

    return Geometry(name=name, grlen=grlen, valen=valen, palen=palen, asid_bits=asid_bits,
                    stlb_ways=ways, stlb_sets=sets, mtlb_entries=entries,
                    stlb_page_shift=stlbps, page_shifts=tuple(sorted(shifts)), policy=policy,
                    seed=seed or 1, lookup_ports=ports, lookup_latency=latency,
                    tlbfill_ne=tlbfill_ne, source=source)


#: a geometry file is a few hundred bytes; anything larger is not one
MAX_GEOMETRY_BYTES = 64 * 1024
#: nesting deeper than this is not a geometry (its deepest is 2)
MAX_YAML_DEPTH = 16


class _Refused(Exception):
    """What the strict YAML loader refuses, with the line it found it on."""

    def __init__(self, message: str, mark):
        super().__init__(message)
        self.line = mark.line + 1 if mark is not None else None


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors and aliases (a geometry has no use for them,
    and an alias bomb of a few hundred bytes expands to gigabytes), without duplicate
    keys at any level, and with bounded nesting."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise _Refused("anchors and aliases (& and *) are not allowed in a geometry file",
                           event.start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _Refused(f"nested more than {MAX_YAML_DEPTH} levels deep",
                               event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                raise _Refused("a key that is a list or mapping", key_node.start_mark) \
                    from None
            if duplicate:
                raise _Refused(f"key {_show(key)} appears twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _bounded_int(loader, node):
    """YAML integers of at most 40 characters (Python refuses to convert numbers of more
    than 4300 digits, and a geometry's largest value has 5)."""
    text = loader.construct_scalar(node)
    if len(text) > 40:
        raise _Refused(f"a number of {len(text)} characters: at most 40", node.start_mark)
    return yaml.SafeLoader.construct_yaml_int(loader, node)


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _bounded_int)


def read_input(path: Path, limit: int, what: str) -> bytes:
    """At most ``limit`` bytes of a file, or bad input saying why not (missing, a
    directory, unreadable, larger than ``limit``)."""
    with open_input(path, what) as f, reading(path, what):
        data = f.read(limit + 1)
    if len(data) > limit:
        raise InputError(f"{path}: larger than {limit // 1024} KiB: not {what}")
    return data


def load_geometry(path) -> Geometry:
    """Read and validate a geometry YAML file."""
    path = Path(path)
    text = decode_utf8(read_input(path, MAX_GEOMETRY_BYTES, "a geometry file"), str(path))
    try:
        data = yaml.load(text, Loader=_StrictLoader)      # noqa: S506 (safe: SafeLoader)
    except _Refused as err:
        where = f":{err.line}" if err.line else ""
        raise InputError(f"{path}{where}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "malformed YAML"
        raise InputError(f"{path}{where}: malformed YAML: {problem}") from None
    return geometry_from_dict(data, source=str(path))
