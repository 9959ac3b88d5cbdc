"""Hostile input: the corpus of tests/badinput, each case run as its own process under a time
and a memory limit, and property tests that throw random and near-valid input at the
geometry loader and both trace parsers (Python's and the Verilator harness's).

Every case must: exit with status 2 within 5 s and 1 GiB; print one line on stderr that
names the place (the file, and its line where it has one) and says what is wrong; print no
traceback; leave no file behind and write nothing outside the places the command names (it
runs in an empty directory, with HOME and the cache directory empty too).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import CONFIGS, GEOMS, ROOT, TRACES, need_verilator
from loongtlb.sw_model.errors import InputError
from loongtlb.sw_model.geometry import load_geometry
from loongtlb.testbench.trace import load_trace

BAD = Path(__file__).resolve().parent / "badinput"
TINY = str(CONFIGS / "tiny.yaml")
SECONDS = 5
MEMORY = 1 << 30


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    resource.setrlimit(resource.RLIMIT_CPU, (4 * SECONDS, 4 * SECONDS))


def run_isolated(argv: list[str], tmp_path: Path, watch=()):
    """Run ``loongtlb ARGV`` in an empty directory with an empty HOME and cache; return the
    process, its wall time, and every file it left in those places and in ``watch``."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "LOONGTLB_DEBUG"}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "loongtlb.testbench.cli", *argv], cwd=work,
                          env=env, capture_output=True, timeout=6 * SECONDS,
                          preexec_fn=_limits)
    elapsed = time.monotonic() - start
    left = sorted(str(p.relative_to(tmp_path)) for d in (work, home, *watch)
                  for p in d.rglob("*"))
    return proc, elapsed, left


def assert_refused(argv, tmp_path, words, named=(), watch=()):
    proc, elapsed, left = run_isolated([str(a) for a in argv], tmp_path, watch)
    err = proc.stderr.decode("utf-8", "replace")
    lines = err.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, err[-2000:])
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    for word in (*named, *words):
        assert word in lines[0], (word, lines[0])
    assert proc.stdout == b""
    assert elapsed < SECONDS, f"{elapsed:.1f} s"
    assert left == [], left                        # nothing written, in any of the places


def _expected_words(path: Path) -> list[str]:
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith("# expect: "), path
    return [w.strip() for w in first[len("# expect: "):].split("|")]


@pytest.mark.parametrize("path", sorted((BAD / "geometry").glob("*.yaml")), ids=lambda p: p.name)
def test_bad_geometry_file(tmp_path, path):
    assert_refused(["info", path], tmp_path, _expected_words(path), [path.name])


@pytest.mark.parametrize("path", sorted((BAD / "traces").glob("*.jsonl")), ids=lambda p: p.name)
def test_bad_trace_file(tmp_path, path):
    assert_refused(["replay", TINY, path, "--backend", "model"], tmp_path,
                   _expected_words(path), [f"{path.name}:3"])


def _commands():
    for line in (BAD / "commands.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            args, _, words = line.partition("||")
            yield pytest.param(args.split(), [w.strip() for w in words.split("|")],
                               id=args.strip())


@pytest.mark.parametrize("args, words", list(_commands()))
def test_bad_command_line(tmp_path, args, words):
    named = tmp_path / "named"                       # the directory {tmp} names
    named.mkdir()
    values = {"tiny": TINY, "trace": str(TRACES / "refill.jsonl"), "tmp": str(named),
              "empty": ""}
    argv = [str(ROOT / a) if a.startswith("configs/") else a.format(**values) for a in args]
    assert_refused(argv, tmp_path, words, watch=[named])


def test_corpus_size():
    """The corpus: at least 30 cases beyond the 62 of the first corpus."""
    count = (len(list((BAD / "geometry").glob("*.yaml"))) + len(list((BAD / "traces").glob(
        "*.jsonl"))) + len(list(_commands())))
    assert count >= 62 + 30


@pytest.mark.parametrize("argv, words", [
    (["info", "{big}"], ["big.yaml", "larger than 64 KiB"]),
    (["replay", TINY, "{long}", "--backend", "model"], ["long.jsonl:2", "longer than 64 KiB"]),
    (["replay", TINY, "{deep}", "--backend", "model"], ["deep.jsonl:1", "longer than 64 KiB"]),
])
def test_large_files(tmp_path, argv, words):
    """Files too large to keep in the repository: a 70 KB geometry, a 70 KB trace line,
    a line of 100,000 nested brackets."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "big.yaml").write_text("# padding\n" * 7000)
    (files / "long.jsonl").write_text('{"op": "ertn"}\n{"op": "ertn", "x": "' + "x" * 70000
                                      + '"}\n')
    (files / "deep.jsonl").write_text("[" * 100000 + "\n")
    argv = [a.format(big=files / "big.yaml", long=files / "long.jsonl",
                     deep=files / "deep.jsonl") for a in argv]
    assert_refused(argv, tmp_path, words)


def test_a_closed_stdout_ends_quietly(tmp_path):
    """``race --json | head -1``: the reader goes away; no BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "loongtlb.testbench.cli", "race", TINY, "--json",
                             "--backend", "model", "--schedule", "exhaustive"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_the_cache_stays_inside_itself(tmp_path, monkeypatch):
    """The Verilator cache builds and prunes only right inside its directory, whatever the
    name it is handed (the geometry loader refuses such names before this)."""
    from loongtlb.testbench.verilator_backend import _in_cache, prune

    cache = tmp_path / "cache"
    cache.mkdir()
    outside = tmp_path / "x-0123456789abcdef"
    outside.mkdir()
    for name in ("../x-0123456789abcdef", "a/../../x-1", "..", ".hidden-1", "/abs-1"):
        with pytest.raises(InputError):
            _in_cache(cache, name)
    (cache / "x-0123456789abcdef").symlink_to(outside)
    for i in range(5):
        (cache / f"x-{i:016x}").mkdir()
    prune(cache, "x", keep=1)
    assert outside.is_dir()                    # a link in the cache is not followed
    assert len([p for p in cache.iterdir() if p.is_dir() and not p.is_symlink()]) == 1


# ---- property tests ---------------------------------------------------------------------------

FIELDS = ["op", "cpu", "csr", "value", "va", "asid", "inv_op", "access", "port", "expect",
          "x"]
OPS = ["csrwr", "csrrd", "tlbsrch", "tlbrd", "tlbwr", "tlbfill", "tlbclr", "tlbflush",
       "invtlb", "translate", "ertn", "nop", ""]
SCALARS = st.one_of(
    st.integers(-3, 2**64 + 3), st.integers(0, 100), st.sampled_from(OPS),
    st.sampled_from(["ASID", "TLBIDX", "load", "store", "fetch", "0x10", "0x", "0xg", "12"]),
    st.booleans(), st.none(), st.floats(allow_nan=True), st.text(max_size=8))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(FIELDS + ["exc", "pa",
                                                                           "illegal"]),
                                                 inner, max_size=3)), max_leaves=6)


@st.composite
def near_valid_lines(draw) -> str:
    """A JSON object line made of the format's own names and values, fields sometimes
    repeated, sometimes cut short or spaced oddly."""
    pairs = draw(st.lists(st.tuples(st.sampled_from(FIELDS), VALUES), min_size=1, max_size=6))
    if draw(st.booleans()):
        pairs.insert(0, ("op", draw(st.sampled_from(OPS))))
    sep = draw(st.sampled_from([", ", ",", " , "]))
    text = "{" + sep.join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs) + "}"
    cut = draw(st.integers(0, 3))
    return text[:-cut] if cut and draw(st.booleans()) else text


def _parse_file(tmp_path, data: bytes, loader):
    path = tmp_path / "input"
    path.write_bytes(data)
    try:
        loader(path)
        return True
    except InputError as err:
        assert "\n" not in str(err) and len(str(err)) < 1200
        return False


PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(data=st.binary(max_size=300))
def test_random_bytes(tmp_path, data):
    """Random bytes: both loaders answer with a result or an InputError, nothing else."""
    _parse_file(tmp_path, data, lambda p: load_trace(p, GEOMS["tiny"]))
    _parse_file(tmp_path, data, load_geometry)


@PROPERTY
@given(lines=st.lists(near_valid_lines(), min_size=1, max_size=4))
def test_near_valid_trace_lines(tmp_path, lines):
    _parse_file(tmp_path, "\n".join(lines).encode(), lambda p: load_trace(p, GEOMS["tiny"]))


GEOMETRY_KEYS = ["name", "grlen", "valen", "palen", "asid_bits", "stlb", "mtlb",
                 "stlb_page_shift", "page_shifts", "replacement", "lookup_ports",
                 "lookup_latency", "tlbfill_ne", "ways", "sets", "entries", "policy", "seed"]


@PROPERTY
@given(doc=st.dictionaries(st.sampled_from(GEOMETRY_KEYS), VALUES, max_size=14),
       extra=st.sampled_from(["", "x: &a 1\ny: *a\n", "name: tiny\n", "? [1]\n: 2\n",
                              "valen: 48\n", "\t- 1\n", "%YAML 1.1\n---\n"]))
def test_near_valid_geometry(tmp_path, doc, extra):
    base = (CONFIGS / "tiny.yaml").read_text()
    text = base + "".join(f"{k}: {json.dumps(v)}\n" for k, v in doc.items()) + extra
    _parse_file(tmp_path, text.encode(), load_geometry)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=near_valid_lines())
def test_the_harness_takes_only_what_python_takes(tmp_path, line):
    """The Verilator harness parses the common form of a line itself and hands anything
    else back to Python: a line it runs, Python must take too, with the same outcome."""
    need_verilator()
    from loongtlb.testbench.replay import replay
    from loongtlb.testbench.backends import ModelBackend
    from loongtlb.testbench.verilator_backend import build, replay_file

    path = tmp_path / "one.jsonl"
    path.write_text(line + "\n")
    harness = replay_file(GEOMS["tiny"], path, build(GEOMS["tiny"]))
    if harness is None:
        return                                         # Python decides
    ops = load_trace(path, GEOMS["tiny"])              # must not raise
    python = replay(ops, ModelBackend(GEOMS["tiny"], 1 + max(op.cpu for op in ops)), "x")
    assert harness.ok == python.ok
