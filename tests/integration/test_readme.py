"""Every shell block of README.md runs as written (issue 13): the README cannot rot.

Marker convention (also in docs/CONTRIBUTING.md). A fenced block whose info string is ``sh``,
``bash`` or ``shell`` is run; any other fence (``yaml``, ``json``, ``crontab``, ``text``...) is not.
An HTML comment on the line right before the fence (invisible on GitHub) changes that:

    <!-- needs: nps -->                 the block needs a real NPS (or another production service
                                        the tests do not have): never run here
    <!-- needs: TOOL [TOOL...] -->      the block needs these programs: skipped, naming them, when one
                                        is not on PATH (in CI every one is installed)
    <!-- readme-test: skip REASON -->   not run here, for the REASON given (e.g. the lines that
                                        install the package and run the whole test suite)

Each command of a run block must exit 0, unless its comment says ``(exit N)``: then exactly N
(a command that should fail and does not is a failure too). The blocks run in README order in one
temporary folder, which holds a copy of ``scenarios/`` and ``contrib/`` (it stands for the
checkout): files a block writes are there for the next one, but ``cd`` and variables do not carry
over. A process a block starts with ``&`` stays up (the next block starts once it listens, as a
person typing would wait) and is ended by PID when the test ends. ``radius-probe`` on PATH is this
checkout, and ``pip install .`` says so and does nothing. Everything runs in a private network
namespace whose only interface is loopback (where it cannot be made, on the host's loopback).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
RUN_FENCES = {"sh", "bash", "shell"}
MARKER = re.compile(r"^<!--\s*(needs:|readme-test:\s*skip)\s*(.*?)\s*-->\s*$")
EXPECTED_EXIT = re.compile(r"\(exit (\d+)")
BLOCK_TIMEOUT_S = 60.0
START_WAIT_S = 20.0


@dataclass
class Block:
    line: int  # 1-based line of the opening fence in README.md
    fence: str
    text: str
    needs: list[str] = field(default_factory=list)
    skip: str | None = None

    @property
    def runs(self) -> bool:
        return self.fence in RUN_FENCES


def readme_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\S*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start, fence, body = i, m.group(1), []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        block = Block(line=start + 1, fence=fence, text="\n".join(body) + "\n")
        marker = MARKER.match(lines[start - 1]) if start > 0 else None
        if marker and marker.group(1) == "needs:":
            block.needs = marker.group(2).split()
        elif marker:
            block.skip = marker.group(2) or "no reason given"
        blocks.append(block)
        i += 1
    return blocks


def commands(script: str) -> list[tuple[int, int, int | None]]:
    """(first line, last line, expected exit) of each logical command (continuations joined, heredoc
    bodies skipped); lines are 1-based within the block."""
    out: list[tuple[int, int, int | None]] = []
    lines = script.splitlines()
    i = 0
    while i < len(lines):
        first = i
        logical = lines[i]
        while logical.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            logical += "\n" + lines[i]
        heredoc = re.search(r"<<-?\s*'?\"?(\w+)", logical)
        if heredoc:
            while i + 1 < len(lines) and lines[i + 1].strip() != heredoc.group(1):
                i += 1
            i += 1
        if logical.strip() and not logical.lstrip().startswith("#"):
            m = EXPECTED_EXIT.search(logical)
            out.append((first + 1, i + 1, int(m.group(1)) if m else None))
        i += 1
    return out


SHIM_RADIUS_PROBE = """#!/bin/sh
PYTHONPATH={root}${{PYTHONPATH:+:$PYTHONPATH}} exec {python} -m probe.cli "$@"
"""
SHIM_PIP = """#!/bin/sh
if [ "$*" = "install ." ]; then
  echo "readme test: 'pip install .' stands for this checkout (radius-probe on PATH runs it)"; exit 0
fi
echo "readme test: only 'pip install .' is allowed here, not: pip $*" >&2; exit 97
"""
WRAPPER = """set -o pipefail
trap 'echo "$? $LINENO" >> {errors}' ERR
{body}
jobs -p > {pids}
"""
WRAPPER_OFFSET = 2  # block line 1 is wrapper line 3


class Namespace:
    """A private network namespace with loopback up (root with CAP_SYS_ADMIN), or the host's."""

    def __init__(self) -> None:
        self.holder: subprocess.Popen[bytes] | None = None
        self.note = "a private network namespace (loopback only)"
        if shutil.which("unshare") and shutil.which("nsenter") and shutil.which("ip"):
            holder = subprocess.Popen(["unshare", "--net", "sleep", "600"], stderr=subprocess.DEVNULL)
            time.sleep(0.2)
            up = subprocess.run(["nsenter", "-t", str(holder.pid), "-n", "ip", "link", "set", "lo", "up"],
                                capture_output=True)
            if holder.poll() is None and up.returncode == 0:
                self.holder = holder
                return
            holder.kill()
            holder.wait()
        self.note = "the host's network namespace (no private one could be made): fixed ports may collide"

    def prefix(self) -> list[str]:
        return ["nsenter", "-t", str(self.holder.pid), "-n"] if self.holder else []

    def close(self) -> None:
        if self.holder:
            self.holder.kill()
            self.holder.wait()


def _listening(pid: int) -> bool:
    """The process holds a bound UDP socket or a listening TCP socket."""
    try:
        inodes = {os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] for fd in os.listdir(f"/proc/{pid}/fd")
                  if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")}
    except OSError:
        return False
    for table, state in (("udp", "07"), ("udp6", "07"), ("tcp", "0A"), ("tcp6", "0A")):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == state and cols[9] in inodes:
                return True
    return False


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _end(pids: list[int]) -> None:
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_readme_blocks_parse() -> None:
    """The extractor sees the README's blocks, and every marker is one the convention knows."""
    text = README.read_text()
    blocks = readme_blocks(text)
    assert sum(b.runs for b in blocks) >= 5
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("<!--") and ("needs" in line or "readme-test" in line):
            assert MARKER.match(line), f"README.md:{n}: a marker the README test does not understand: {line}"
    script = "a \\\n  b   # (exit 2)\ncat > f <<'Y'\n# not a command\nY\n# comment\nc &\n"
    assert commands(script) == [(1, 2, 2), (3, 5, None), (7, 7, None)]


def test_readme_runs_verbatim(tmp_path: Path) -> None:
    blocks = [b for b in readme_blocks(README.read_text()) if b.runs]
    work = tmp_path / "checkout"
    work.mkdir()
    for folder in ("scenarios", "contrib"):
        shutil.copytree(ROOT / folder, work / folder)
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "radius-probe").write_text(SHIM_RADIUS_PROBE.format(root=ROOT, python=sys.executable))
    (shims / "pip").write_text(SHIM_PIP)
    for shim in shims.iterdir():
        shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RADIUS_PROBE_", "NPS"))}
    env["PATH"] = f"{shims}:{env.get('PATH', '/usr/bin:/bin')}"
    env["PYTHONPATH"] = str(ROOT)  # "pip install ." stands for this checkout: importable by other tools too (locust)

    ns = Namespace()
    started: list[int] = []
    failures: list[str] = []
    skipped: list[str] = []
    ran = 0
    try:
        for n, block in enumerate(blocks):
            where = f"README.md:{block.line}"
            if block.skip:
                continue
            if "nps" in block.needs:
                continue
            missing = [tool for tool in block.needs if not shutil.which(tool)]
            if missing:
                skipped.append(f"{where} needs {', '.join(missing)} (not installed)")
                continue
            errors, pids = tmp_path / f"block{n}.errors", tmp_path / f"block{n}.pids"
            script = tmp_path / f"block{n}.sh"
            script.write_text(WRAPPER.format(errors=errors, pids=pids, body=block.text))
            log = tmp_path / f"block{n}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen([*ns.prefix(), "bash", str(script)], cwd=work, env=env,
                                        stdout=out, stderr=subprocess.STDOUT, start_new_session=False)
                try:
                    proc.wait(timeout=BLOCK_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    failures.append(f"{where}: still running after {BLOCK_TIMEOUT_S:g} s")
            ran += 1
            new = [int(p) for p in pids.read_text().split()] if pids.exists() else []
            started += new
            got = {}
            for row in (errors.read_text().splitlines() if errors.exists() else []):
                status, line = row.split()
                got[int(line) - WRAPPER_OFFSET] = int(status)
            output = log.read_text(errors="replace")
            for first, last, expected in commands(block.text):
                status = next((s for line, s in got.items() if first <= line <= last), 0)
                if status != (expected or 0):
                    cmd = block.text.splitlines()[first - 1].strip()
                    failures.append(f"README.md:{block.line + first}: exit {status}, expected {expected or 0}: "
                                    f"{cmd}\n--- output of the block ---\n{output[-3000:]}")
            deadline = time.monotonic() + START_WAIT_S
            for pid in new:
                while _alive(pid) and not _listening(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
    finally:
        _end(started)
        ns.close()
    print(f"ran {ran} README blocks in {ns.note}; skipped: {skipped or 'none'}")
    assert not failures, "\n\n".join(failures)
    if skipped:
        pytest.skip(f"ran {ran} README blocks, all passed; skipped: {'; '.join(skipped)}")
