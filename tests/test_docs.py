"""Every example in README.md and docs/ runs as written.

- Each line of a ```sh block is a command. ``loongtlb ...`` runs and must succeed; where a
  ```text block follows a one-command ```sh block, that is the command's output, compared
  exactly. ``python benchmarks/...`` commands run for minutes to hours (they produce
  docs/performance.md, docs/fpga.md, docs/race-exhaustive.md): their ``--help`` must list
  every option the line uses. The install line and the test command are CI's own job.
- Each ```json block of trace lines replays in cosim with every expect met.
"""

import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"```(\w+)\n(.*?)```", re.S)
CI_ONLY = ("python3 -m venv", "python -m pytest")


def _blocks():
    for path in DOCS:
        blocks = FENCE.findall(path.read_text())
        for i, (kind, body) in enumerate(blocks):
            following = blocks[i + 1] if i + 1 < len(blocks) else ("", "")
            yield path, kind, body, following


def _commands():
    for path, kind, body, (next_kind, next_body) in _blocks():
        if kind != "sh":
            continue
        lines = [line for line in body.splitlines() if line.strip() and
                 not line.startswith("#")]
        for line in lines:
            if line.startswith(CI_ONLY):
                continue
            output = next_body if next_kind == "text" and len(lines) == 1 else None
            yield pytest.param(line.split("  #")[0].strip(), output,
                               id=f"{path.relative_to(ROOT)}: {line[:60]}")


def _traces():
    for path, kind, body, _next in _blocks():
        if kind == "json" and body.lstrip().startswith('{"op"'):
            yield pytest.param(body, id=f"{path.relative_to(ROOT)}: {body[:40]}")


def test_the_docs_have_examples():
    assert len(list(_commands())) >= 5 and len(list(_traces())) >= 1


@pytest.mark.parametrize("line, output", list(_commands()))
def test_command(line, output):
    argv = shlex.split(line)
    if argv[0] == "loongtlb":
        done = subprocess.run([sys.executable, "-m", "loongtlb.testbench.cli", *argv[1:]],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        if output is not None:
            assert done.stdout == output
        return
    assert argv[0] == "python" and argv[1].startswith("benchmarks/"), line
    done = subprocess.run([sys.executable, argv[1], "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    for option in (a for a in argv[2:] if a.startswith("--")):
        assert option in done.stdout, option


@pytest.mark.parametrize("trace", list(_traces()))
def test_trace(tmp_path, trace):
    path = tmp_path / "example.jsonl"
    path.write_text(trace)
    done = subprocess.run([sys.executable, "-m", "loongtlb.testbench.cli", "replay",
                           str(ROOT / "configs" / "tiny.yaml"), str(path), "--backend",
                           "cosim"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")


def test_docs_cite_rows_that_exist():
    """Every D and K row cited in the code and the docs is in docs/spec/decisions.md."""
    rows = set(re.findall(r"^\| ([DK]\d+) \|", (ROOT / "docs" / "spec" / "decisions.md")
                          .read_text(), re.M))
    cited = set()
    for path in [*ROOT.glob("*/*.py"), *ROOT.glob("*/*/*.py"), *DOCS]:
        if ".venv" in path.parts:
            continue
        cited |= set(re.findall(r"\b([DK][1-9]\d?)\b", path.read_text()))
    assert cited - rows == set()
