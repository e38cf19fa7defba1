"""Client cost of radius-probe against radclient, eapol_test and the OpenSSL floor, on one FreeRADIUS, in one run.

Why ratios: absolute milliseconds depend on the machine (and on what else runs on
it); "how much client CPU does radius-probe spend per authentication compared with
the tools people script today, and with a bare TLS handshake" does not, as long as
everything talks to the same server in the same run. So this script starts ONE
FreeRADIUS on 127.0.0.1 (tests/servers/freeradius.py, a lab PKI from probe.pki in a
temporary directory, EAP-TLS up to TLS 1.3, PEAP at 1.2, its TLS session cache on)
and measures, for every case (PAP, EAP-TLS over TLS 1.2 and 1.3, with an ECDSA P-256
client certificate, resumed, PEAP-MSCHAPv2, PEAP-TLS) at every concurrency (1 and 64):

* radius-probe: ``bench/_probe_loop.py`` authenticating N times in one process over
  one RadiusClient, after one warm-up authentication; CPU from its own ``getrusage``
  around the loop (its whole-process CPU, start-up included, is in the JSON);
* the reference: one radclient process fed a file of N requests (``-p C``) for PAP;
  N ``eapol_test`` runs, C at a time, for EAP (resumed: ``eapol_test -r``, one full
  and R resumed authentications per process); CPU of each child from ``os.wait4``;
* the OpenSSL floor (bench/floor.py): a bare ``ssl`` MemoryBIO handshake with the
  same certificates and TLS version, both ends in one process: ``both`` is the whole
  exchange (the issue's floor), ``client`` the client's half alone.

Then the one-shot costs (whole processes, N runs each: ``python3 -c pass``,
``radius-probe --help``, ``radius-probe auth`` per method, radclient and eapol_test
once each, and the top of ``python -X importtime`` for a PAP auth); held-conversation
memory (bench/held.py: 10,000 PAP and EAP-TLS conversations waiting for their
answer, VmHWM delta / count); and ``serve`` against the emulator (bench/serve_cost.py:
1,000 checks per 60 s interval, share of one core; ``/probe`` CPU and latency over
the authentication itself). Every row prints its reference and the ratio; the goals
of issue 14 are checked at the end (met / NOT met). Nothing here asserts on time.

CPU, not wall, is what the ratios use: the machine may be shared, and a process's
own CPU time is what it costs whatever else runs. ``uptime``'s load average is
recorded next to the table.

Usage: python bench/run.py [--smoke] [--count N] [--eap-count M] [--concurrency 1,64]
       [--cases pap,eap-tls,...] [--skip oneshot,memory,serve] [--time-limit S]
       [--out bench/results/latest.json] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from floor import FloorSpec, handshake_floor  # noqa: E402  (bench/ is on the path above)

from probe.pki import Pki, init_pki  # noqa: E402
from tests.servers.freeradius import (  # noqa: E402
    EapConfig,
    FreeRadiusServer,
    User,
    freeradius_available,
)

HOST = "127.0.0.1"
IDENTITY = "alice"  # the lab PKI's valid RSA client certificate; also the PAP/MSCHAPv2 user
SERVER_NAME = "nps.lab.test"
PROBE_LOOP = ROOT / "bench" / "_probe_loop.py"
DEFAULT_PAP_COUNT = 1000
DEFAULT_EAP_COUNT = 100
DEFAULT_CONCURRENCY = "1,64"
FLOOR_COUNT = 200
ONESHOT_RUNS = 10
EAPOL_REAUTHS = 9  # resumed reference: eapol_test -r 9 = one full + nine resumed authentications per process
# Per request: a lost packet is retried once and then given up, so a stuck
# request cannot eat the time limit.
RADIUS_TIMEOUT_S = 2
RADIUS_RETRIES = 1
EAPOL_TIMEOUT_S = 10
# After the loop's own time limit, how long one in-flight authentication may still take.
GRACE_S = RADIUS_TIMEOUT_S * (RADIUS_RETRIES + 1) + 10
TAIL_LINES = 15
RSS_SAMPLES = 3
SKIPPED = "stopped by --time-limit"
GNU_TIME = shutil.which("time")  # /usr/bin/time (Debian package time): peak RSS of the baselines


@dataclass(frozen=True)
class Case:
    """One way to authenticate, the same for every tool."""

    name: str
    method: str  # pap | eap-tls | peap-mschapv2 | peap-tls
    tls: str | None = None  # the TLS version every tool is held to (None: no TLS)
    user: str = IDENTITY  # whose certificate (alice: RSA 2048, ecdsa-user: ECDSA P-256)
    resume: bool = False  # offer the TLS session of an earlier authentication

    @property
    def certificate(self) -> bool:
        return self.method in ("eap-tls", "peap-tls")


CASES: dict[str, Case] = {c.name: c for c in (
    Case("pap", "pap"),
    Case("eap-tls", "eap-tls", "1.2"),
    Case("eap-tls-1.3", "eap-tls", "1.3"),
    Case("eap-tls-ecdsa", "eap-tls", "1.2", user="ecdsa-user"),
    Case("eap-tls-resumed", "eap-tls", "1.2", resume=True),
    Case("peap-mschapv2", "peap-mschapv2", "1.2"),
    Case("peap-tls", "peap-tls", "1.2"),
)}


@dataclass
class Run:
    """The summed cost of one or more finished (or killed) child processes."""

    started: int = 0
    ok: int = 0
    user_s: float = 0.0
    sys_s: float = 0.0
    wall_s: float = 0.0
    peak_rss_kb: int | None = None
    killed: int = 0
    first_failure: str | None = None


@dataclass
class Row:
    """One line of the table: radius-probe, its reference and the floor, for one case at one concurrency."""

    case: str
    concurrency: int
    count: int
    probe_ok: str  # "ok/done"
    probe_cpu_ms: float | None  # client CPU per authentication, the loop alone
    probe_per_s: float | None  # authentications per second (loop wall)
    probe_process_cpu_ms: float | None  # the whole process, start-up included, per authentication
    probe_rss_mb: float | None
    reference: str
    ref_ok: str
    ref_cpu_ms: float | None
    ref_per_s: float | None
    floor_ms: float | None = None  # bare handshake, both ends (the issue's floor)
    floor_client_ms: float | None = None  # the client's half alone
    breakdown: dict[str, float] = field(default_factory=dict)  # ms per auth: machine, openssl, driver, ...
    note: str = ""
    first_failure: str | None = None

    @property
    def ref_ratio(self) -> float | None:
        """reference CPU / radius-probe CPU (> 1: radius-probe is cheaper)."""
        return _div(self.ref_cpu_ms, self.probe_cpu_ms)

    @property
    def floor_ratio(self) -> float | None:
        """radius-probe CPU / the floor (1.0 would be OpenSSL alone)."""
        return _div(self.probe_cpu_ms, self.floor_ms)


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


@dataclass
class Lab:
    """Everything the tools need to reach the one server; secrets live only here and in 0600 files."""

    port: int
    secret: str = field(repr=False)
    password: str = field(repr=False)
    pki: Pki
    workdir: Path
    secret_file: Path
    password_file: Path

    def redact(self, text: str) -> str:
        """Text safe to print: no shared secret, no password."""
        return text.replace(self.secret, "<secret>").replace(self.password, "<password>")


# -- child processes ------------------------------------------------------------
#
# CPU comes from os.wait4 on the tool's own PID. Peak RSS cannot: Linux carries
# the RSS of the process that forked (this Python, ~35 MB) into the child's
# ru_maxrss at exec, which would hide a 5 MB tool. So peak RSS of radclient and
# eapol_test is read by GNU time (a small forker) on runs of their own, and
# radius-probe reports its own VmHWM.


@dataclass
class _Child:
    proc: subprocess.Popen[bytes]
    pidfd: int
    log: Path
    rss_file: Path | None


def _spawn(argv: Sequence[str], log: Path, stdin: bytes | None, rss_file: Path | None,
           env: dict[str, str] | None = None) -> _Child:
    """Start one child (under GNU time when ``rss_file`` is given); stdout+stderr go to ``log``."""
    if rss_file is not None and GNU_TIME is not None:
        argv = [GNU_TIME, "-o", str(rss_file), "-f", "%M", *argv]
    with log.open("wb") as out:
        proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    if stdin is not None and proc.stdin is not None:
        proc.stdin.write(stdin)  # small (a JSON spec): fits the pipe buffer, never blocks
        proc.stdin.close()
    return _Child(proc, os.pidfd_open(proc.pid), log, rss_file if GNU_TIME is not None else None)


# (exit code, output) -> how many authentications this child completed successfully
Successes = Callable[[int, str], int]


def _peak_kb(rss_file: Path) -> int | None:
    """GNU time's %M (KiB): the last line of its -o file (a note about the exit status may precede it)."""
    lines = rss_file.read_text().split() if rss_file.exists() else []
    return int(lines[-1]) if lines and lines[-1].isdigit() else None


def _reap(child: _Child, run: Run, successes: Successes, expected: int, redact: Callable[[str], str]) -> None:
    """Collect exactly this child's rusage with wait4 (its PID stays ours until reaped), then drop its log."""
    _, status, usage = os.wait4(child.proc.pid, 0)
    os.close(child.pidfd)
    child.proc.returncode = os.waitstatus_to_exitcode(status)
    run.user_s += usage.ru_utime
    run.sys_s += usage.ru_stime
    if child.rss_file is not None and (peak := _peak_kb(child.rss_file)) is not None:
        run.peak_rss_kb = max(run.peak_rss_kb or 0, peak)
    output = child.log.read_text(errors="replace")
    child.log.unlink()
    good = successes(child.proc.returncode, output)
    run.ok += good
    if good < expected and run.first_failure is None:
        tail = "\n".join(output.splitlines()[-TAIL_LINES:])
        run.first_failure = redact(f"exit {child.proc.returncode}:\n{tail}")


def run_many(tag: str, argv: Sequence[str], count: int, concurrency: int, deadline: float, logdir: Path,
             successes: Successes, redact: Callable[[str], str], *, per_child: int = 1,
             stdin: bytes | None = None, measure_rss: bool = False, env: dict[str, str] | None = None) -> Run:
    """Run ``argv`` ``count`` times, ``concurrency`` at a time; none starts after ``deadline``.

    A child still running ``GRACE_S`` after the deadline is killed. ``wall_s`` is
    the elapsed time of the whole batch. With ``measure_rss`` every child runs
    under GNU time (whose own ~1 ms of CPU then counts too).
    """
    run, running, t0 = Run(), [], time.perf_counter()
    while running or (run.started < count and time.monotonic() < deadline):
        while len(running) < concurrency and run.started < count and time.monotonic() < deadline:
            name = f"{tag}-{run.started}"
            rss_file = logdir / f"{name}.rss" if measure_rss else None
            running.append(_spawn(argv, logdir / f"{name}.log", stdin, rss_file, env))
            run.started += 1
        remaining = deadline + GRACE_S - time.monotonic()
        ready, _, _ = select.select([c.pidfd for c in running], [], [], max(0.0, remaining))
        if not ready:  # overran: kill our own children (not yet reaped, so the PIDs cannot have been reused)
            for child in running:
                child.proc.kill()
                run.killed += 1
            ready = [c.pidfd for c in running]
        for child in [c for c in running if c.pidfd in ready]:
            running.remove(child)
            _reap(child, run, successes, per_child, redact)
    run.wall_s = time.perf_counter() - t0
    return run


def sampled_rss_mb(tag: str, argv: Sequence[str], deadline: float, lab: Lab, successes: Successes) -> float | None:
    """Peak RSS of a one-authentication tool, from ``RSS_SAMPLES`` extra runs under GNU time."""
    if GNU_TIME is None:
        return None
    run = run_many(f"{tag}-rss", argv, RSS_SAMPLES, 1, deadline, lab.workdir, successes, lab.redact,
                   measure_rss=True)
    return run.peak_rss_kb / 1024 if run.peak_rss_kb is not None else None


# -- radius-probe ---------------------------------------------------------------


def probe_spec(lab: Lab, case: Case, count: int, concurrency: int, deadline: float, report: Path,
               breakdown: bool = False) -> dict[str, Any]:
    """What _probe_loop.py reads on stdin (secrets included, so never on a command line)."""
    user = lab.pki.users[case.user]
    return {
        "method": case.method, "host": HOST, "port": lab.port, "secret": lab.secret, "identity": IDENTITY,
        "password": lab.password if case.method in ("pap", "peap-mschapv2") else None,
        "cert": str(user.cert) if case.certificate else None, "key": str(user.key) if case.certificate else None,
        "ca": str(lab.pki.ca) if case.tls else None, "server_name": SERVER_NAME if case.tls else None,
        "tls_max": case.tls, "count": count, "concurrency": concurrency, "resume": case.resume,
        "time_limit_s": max(0.0, deadline - time.monotonic()), "timeout_s": RADIUS_TIMEOUT_S,
        "retries": RADIUS_RETRIES, "report": str(report), "breakdown": breakdown,
    }


@dataclass
class ProbeResult:
    done: int = 0
    ok: int = 0
    resumed: int = 0
    loop_cpu_ms: float | None = None
    per_s: float | None = None
    process_cpu_ms: float | None = None
    rss_mb: float | None = None
    breakdown: dict[str, float] = field(default_factory=dict)
    failure: str | None = None


def probe_loop(lab: Lab, case: Case, count: int, concurrency: int, deadline: float) -> ProbeResult:
    """radius-probe in its own process; the loop's CPU per authentication and a CPU breakdown."""
    report_path = lab.workdir / f"probe-{case.name}-{concurrency}.json"
    spec = probe_spec(lab, case, count, concurrency, deadline, report_path, breakdown=True)
    proc = run_many(f"probe-{case.name}", [sys.executable, str(PROBE_LOOP)], 1, 1, deadline, lab.workdir,
                    lambda rc, _out: int(rc == 0), lab.redact, stdin=json.dumps(spec).encode())
    if not proc.started:
        return ProbeResult(failure=SKIPPED)
    if not report_path.exists() or proc.killed:
        return ProbeResult(failure=proc.first_failure or "the probe loop wrote no report")
    report = json.loads(report_path.read_text())
    done = int(report["done"])
    loop_cpu = report["loop_user_s"] + report["loop_sys_s"]
    result = ProbeResult(done=done, ok=int(report["ok"]), resumed=int(report.get("resumed", 0)),
                         loop_cpu_ms=per_auth(loop_cpu, done),
                         per_s=done / report["loop_wall_s"] if report["loop_wall_s"] else None,
                         process_cpu_ms=per_auth(proc.user_s + proc.sys_s, done), rss_mb=report["vm_hwm_kb"] / 1024,
                         failure=lab.redact(json.dumps(report["first_failure"])) if report["first_failure"]
                         else proc.first_failure)
    parts = report.get("breakdown") or {}
    if done and parts:
        ms = {k: v["s"] * 1000 / done for k, v in parts.items()}
        outside = sum(ms.get(k, 0.0) for k in ("machine", "make_method", "judge"))
        ms["driver"] = max(0.0, (result.loop_cpu_ms or 0.0) - outside)  # asyncio, sockets, the loop itself
        result.breakdown = ms
    return result


# -- radclient ------------------------------------------------------------------

_ACCEPTED = re.compile(r"^\s*Accepted\s*:\s*(\d+)", re.MULTILINE)


def radclient_argv(lab: Lab, request_file: Path, concurrency: int) -> list[str]:
    """radclient reading the secret from a 0600 file (-S), quiet but with the summary (-s)."""
    return ["radclient", "-q", "-s", "-c", "1", "-p", str(concurrency), "-t", str(RADIUS_TIMEOUT_S),
            "-r", str(RADIUS_RETRIES), "-S", str(lab.secret_file), "-f", str(request_file),
            f"{HOST}:{lab.port}", "auth"]


def write_requests(path: Path, lab: Lab, count: int) -> Path:
    """A radclient input file: ``count`` Access-Requests separated by blank lines."""
    request = f'User-Name = "{IDENTITY}"\nUser-Password = "{lab.password}"\n'
    path.write_text("\n".join([request] * count))
    path.chmod(0o600)
    return path


def radclient_accepts(_returncode: int, output: str) -> int:
    """The Access-Accept count of radclient's -s summary."""
    found = _ACCEPTED.search(output)
    return int(found.group(1)) if found else 0


def radclient_batch(lab: Lab, count: int, concurrency: int, deadline: float) -> Run:
    """One radclient process fed a file of ``count`` requests, ``-p concurrency`` in flight."""
    batch_file = write_requests(lab.workdir / f"pap-requests-{count}.txt", lab, count)
    run = run_many("radclient-batch", radclient_argv(lab, batch_file, concurrency), 1, 1, deadline, lab.workdir,
                   radclient_accepts, lab.redact, per_child=count)
    run.started = count if run.started and not run.killed else 0
    return run


# -- eapol_test -----------------------------------------------------------------


def eapol_config(lab: Lab, case: Case) -> Path:
    """The one-network wpa_supplicant config eapol_test reads; server certificate checked like ours."""
    pki = lab.pki
    user = pki.users[case.user]
    tls13 = "0" if case.tls == "1.3" else "1"
    common = {"key_mgmt": "IEEE8021X", "eapol_flags": "0", "ca_cert": f'"{pki.ca}"',
              "domain_suffix_match": f'"{SERVER_NAME}"', "identity": f'"{IDENTITY}"'}
    if case.method == "eap-tls":
        network = {"eap": "TLS", "client_cert": f'"{user.cert}"', "private_key": f'"{user.key}"',
                   "phase1": f'"tls_disable_tlsv1_3={tls13}"'}
    elif case.method == "peap-tls":
        network = {"eap": "PEAP", "anonymous_identity": '"anonymous"', "phase1": '"peaplabel=0 tls_disable_tlsv1_3=1"',
                   "phase2": '"auth=TLS"', "ca_cert2": f'"{pki.ca}"', "client_cert2": f'"{user.cert}"',
                   "private_key2": f'"{user.key}"'}
    else:
        network = {"eap": "PEAP", "anonymous_identity": '"anonymous"', "password": f'"{lab.password}"',
                   "phase1": '"peaplabel=0 tls_disable_tlsv1_3=1"', "phase2": '"auth=MSCHAPV2"'}
    lines = ["network={", *(f"    {k}={v}" for k, v in {**common, **network}.items()), "}"]
    path = lab.workdir / f"eapol-{case.name}.conf"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


_MPPE_OK = re.compile(r"MPPE keys OK: (\d+)  mismatch: (\d+)")


def eapol_successes(returncode: int, output: str) -> int:
    """Authentications with MS-MPPE keys equal to the MSK eapol_test derived (its summary counts -r rounds too)."""
    found = _MPPE_OK.findall(output)
    return int(found[-1][0]) if returncode == 0 and found else 0


def eapol_argv(lab: Lab, case: Case) -> list[str]:
    """eapol_test as people script it. The (per-run, random) secret is on its command line: it has no
    option to read it from a file."""
    reauths = EAPOL_REAUTHS if case.resume else 0
    return ["eapol_test", "-c", str(eapol_config(lab, case)), "-a", HOST, "-p", str(lab.port), "-s", lab.secret,
            "-r", str(reauths), "-t", str(EAPOL_TIMEOUT_S)]


def eapol_run(lab: Lab, case: Case, count: int, concurrency: int, deadline: float) -> Run:
    """``count`` authentications by eapol_test processes, ``concurrency`` processes at a time."""
    per_process = EAPOL_REAUTHS + 1 if case.resume else 1
    processes = max(1, count // per_process)
    run = run_many(f"eapol-{case.name}", eapol_argv(lab, case), processes, concurrency, deadline, lab.workdir,
                   eapol_successes, lab.redact, per_child=per_process)
    run.started = (run.started - run.killed) * per_process
    return run


# -- the emulator (resumption) -------------------------------------------------


class EmulatorThread:
    """The NPS emulator on 127.0.0.1 in a thread of this process (its CPU is never a client's).

    Resumption is measured against it: it grants fast reconnect (TLS 1.2 session ids) as NPS
    does, while the lab FreeRADIUS's session cache (tests/servers/freeradius.py) did a full
    handshake on every offered session in this lab.
    """

    def __init__(self, pki: Pki) -> None:
        import asyncio
        import threading

        from probe.emulator.config import EapSettings, default_config
        from probe.emulator.server import NpsEmulator

        config = default_config()
        config.eap = EapSettings.from_pki(pki.directory)
        self._emulator = NpsEmulator(config)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="emulator", daemon=True)
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._emulator.start(HOST, 0), self._loop)
        self.port = int(started.result(timeout=30)[1])

    def stop(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self._emulator.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def emulator_lab(lab: Lab, port: int) -> Lab:
    """The same PKI and work directory, the emulator's port, secret and lab password."""
    from probe.emulator.config import DEFAULT_PASSWORD, DEFAULT_SECRET

    secret_file, password_file = lab.workdir / "emulator-secret", lab.workdir / "emulator-password"
    for path, value in ((secret_file, DEFAULT_SECRET), (password_file, DEFAULT_PASSWORD)):
        path.write_text(value + "\n")
        path.chmod(0o600)
    return Lab(port, DEFAULT_SECRET, DEFAULT_PASSWORD, lab.pki, lab.workdir, secret_file, password_file)


# -- the floor ------------------------------------------------------------------


def floor_for(lab: Lab, case: Case) -> dict[str, Any] | None:
    """The bare handshake(s) of ``case`` (PEAP-TLS: the outer one plus the inner one with our certificate)."""
    if case.tls is None:
        return None
    pki, user = lab.pki, lab.pki.users[case.user]
    with_cert = FloorSpec(pki.ca, pki.server_chain, pki.server_key, user.cert, user.key, case.tls, case.resume)
    if case.method == "eap-tls":
        return handshake_floor(with_cert, FLOOR_COUNT)
    outer = handshake_floor(FloorSpec(pki.ca, pki.server_chain, pki.server_key, None, None, case.tls), FLOOR_COUNT)
    if case.method == "peap-mschapv2":
        return outer
    inner = handshake_floor(with_cert, FLOOR_COUNT)
    return {**outer, "client_ms": outer["client_ms"] + inner["client_ms"],
            "both_ms": outer["both_ms"] + inner["both_ms"], "note": "outer + inner handshake"}


# -- the table ------------------------------------------------------------------


def per_auth(seconds: float, done: int) -> float | None:
    return seconds * 1000 / done if done else None


def measure(lab: Lab, args: argparse.Namespace, deadline: float) -> list[Row]:
    rows: list[Row] = []
    emulator = EmulatorThread(lab.pki) if any(c.resume for c in args.cases) else None
    try:
        for case in args.cases:
            server = emulator_lab(lab, emulator.port) if case.resume and emulator is not None else lab
            rows += measure_case(server, case, args, deadline)
    finally:
        if emulator is not None:
            emulator.stop()
    return rows


def measure_case(lab: Lab, case: Case, args: argparse.Namespace, deadline: float) -> list[Row]:
    rows: list[Row] = []
    count = args.pap_count if case.method == "pap" else args.eap_count
    floor = floor_for(lab, case)
    for concurrency in args.concurrency:
        print(f"[bench] {case.name} x{concurrency}: {count} authentications per tool ...", file=sys.stderr,
              flush=True)
        probe = probe_loop(lab, case, count, concurrency, deadline)
        if case.method == "pap":
            ref, label = radclient_batch(lab, count, concurrency, deadline), f"radclient -p {concurrency}"
        else:
            ref = eapol_run(lab, case, count, concurrency, deadline)
            label = f"eapol_test -r {EAPOL_REAUTHS}" if case.resume else "eapol_test"
            label += f" x{concurrency}" if concurrency > 1 else ""
        note = f"against the emulator; radius-probe resumed {probe.resumed}/{probe.done}" if case.resume else ""
        rows.append(Row(
            case.name, concurrency, count, f"{probe.ok}/{probe.done}", probe.loop_cpu_ms, probe.per_s,
            probe.process_cpu_ms, probe.rss_mb, label, f"{ref.ok}/{ref.started}",
            per_auth(ref.user_s + ref.sys_s, ref.started), ref.started / ref.wall_s if ref.wall_s else None,
            floor["both_ms"] if floor else None, floor["client_ms"] if floor else None,
            probe.breakdown, note, probe.failure or ref.first_failure))
    return rows


def fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "-" if value is None else format(value, spec) + unit


def render(head: Sequence[str], body: Sequence[Sequence[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body])
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def table(rows: list[Row], markdown: bool = False) -> str:
    head = ("case", "conc", "probe ok", "probe CPU ms/auth", "probe auth/s", "reference", "ref ok",
            "ref CPU ms/auth", "ref auth/s", "ref/probe CPU", "OpenSSL floor ms", "probe/floor")
    body = [(r.case, str(r.concurrency), r.probe_ok, fmt(r.probe_cpu_ms, ".3f"), fmt(r.probe_per_s, ".0f"),
             r.reference, r.ref_ok, fmt(r.ref_cpu_ms, ".3f"), fmt(r.ref_per_s, ".0f"), fmt(r.ref_ratio, ".2f", "x"),
             fmt(r.floor_ms, ".2f"), fmt(r.floor_ratio, ".2f", "x")) for r in rows]
    return render(head, body, markdown)


BREAKDOWN_KEYS = ("openssl_handshake", "machine", "driver", "make_method", "judge")


def breakdown_table(rows: list[Row], markdown: bool = False) -> str:
    """Where the CPU of one authentication goes (concurrency 1): OpenSSL's handshake calls, the rest of the
    sans-IO machine (RADIUS, EAP, TLS framing, validation, report), the driver (asyncio, sockets)."""
    head = ("case", "total ms", "OpenSSL handshake", "machine (excl. OpenSSL)", "driver", "make_method", "judge",
            "floor client ms")
    body = []
    for r in rows:
        if r.concurrency != 1 or not r.breakdown:
            continue
        b = r.breakdown
        body.append((r.case, fmt(r.probe_cpu_ms, ".3f"), fmt(b.get("openssl_handshake", 0.0), ".3f"),
                     fmt(b.get("machine", 0.0) - b.get("openssl_handshake", 0.0), ".3f"), fmt(b.get("driver"), ".3f"),
                     fmt(b.get("make_method"), ".3f"), fmt(b.get("judge"), ".3f"), fmt(r.floor_client_ms, ".2f")))
    return render(head, body, markdown)


# -- one-shot processes ---------------------------------------------------------


@dataclass
class OneShot:
    what: str
    runs: int
    ok: int
    cpu_ms: float | None
    wall_ms: float | None
    note: str = ""


def cli_auth_argv(lab: Lab, case: Case) -> list[str]:
    user = lab.pki.users[case.user]
    argv = [sys.executable, "-m", "probe.cli", "auth", f"{HOST}:{lab.port}", "--secret-file", str(lab.secret_file),
            "--method", case.method, "--identity", IDENTITY, "--json", "--allow-unsigned"]
    if case.method in ("pap", "peap-mschapv2"):
        argv += ["--password-file", str(lab.password_file)]
    if case.certificate:
        argv += ["--cert", str(user.cert), "--key", str(user.key)]
    if case.tls:
        argv += ["--ca", str(lab.pki.ca), "--server-name", SERVER_NAME, "--tls-max", case.tls]
    return argv


def _accepted(_rc: int, output: str) -> int:
    return int('"result": "accept"' in output)


def installed_env(workdir: Path) -> dict[str, str]:
    """The environment of an installed probe: Python's bytecode cache on (in ``workdir``, not the tree).

    ``pip install`` compiles every module to .pyc; a process run with PYTHONDONTWRITEBYTECODE
    from a source tree compiles all of probe/ again on every start (about a third of a PAP
    one-shot's start-up here), which is not what a user's cron job pays.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return env


def oneshots(lab: Lab, runs: int, deadline: float) -> tuple[list[OneShot], list[str]]:
    """Whole processes, one after another: what a cron job or a Nagios check pays each time.

    Each command runs once uncounted first (it fills the bytecode cache, see installed_env);
    the last row is PAP again with every module compiled from source on each start.
    """
    out: list[OneShot] = []
    env = installed_env(lab.workdir)
    compiled = {**env, "PYTHONDONTWRITEBYTECODE": "1"}
    compiled.pop("PYTHONPYCACHEPREFIX")
    one_file = write_requests(lab.workdir / "pap-request.txt", lab, 1)
    jobs: list[tuple[str, list[str], Successes]] = [
        ("python3 -c pass (the interpreter alone)", [sys.executable, "-c", "pass"], lambda rc, _o: int(rc == 0)),
        ("radius-probe --help", [sys.executable, "-m", "probe.cli", "--help"], lambda rc, _o: int(rc == 0)),
        ("radius-probe auth pap", cli_auth_argv(lab, CASES["pap"]), _accepted),
        ("radclient (1 request)", radclient_argv(lab, one_file, 1), radclient_accepts),
        ("radius-probe auth eap-tls", cli_auth_argv(lab, CASES["eap-tls"]), _accepted),
        ("eapol_test eap-tls", eapol_argv(lab, CASES["eap-tls"]), eapol_successes),
        ("radius-probe auth peap-tls", cli_auth_argv(lab, CASES["peap-tls"]), _accepted),
        ("eapol_test peap-tls", eapol_argv(lab, CASES["peap-tls"]), eapol_successes),
        ("radius-probe auth pap, no bytecode cache (every module compiled)", cli_auth_argv(lab, CASES["pap"]),
         _accepted),
    ]
    for what, argv, successes in jobs:
        job_env = compiled if "no bytecode cache" in what else env
        run_many("oneshot-warmup", argv, 1, 1, deadline, lab.workdir, successes, lab.redact, env=job_env)
        run = run_many("oneshot", argv, runs, 1, deadline, lab.workdir, successes, lab.redact, env=job_env)
        done = run.started - run.killed
        out.append(OneShot(what, done, run.ok, per_auth(run.user_s + run.sys_s, done), per_auth(run.wall_s, done),
                           run.first_failure or ""))
    return out, importtime_top(cli_auth_argv(lab, CASES["pap"]), env)


def importtime_top(argv: list[str], env: dict[str, str] | None = None, top: int = 8) -> list[str]:
    """The slowest imports (cumulative) of one PAP auth, from ``python -X importtime``."""
    done = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, check=False, env=env)
    rows = []
    for line in done.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    rows.sort(reverse=True)
    return [f"{us / 1000:6.1f} ms  {name}" for us, name in rows[:top]]


def oneshot_table(rows: list[OneShot], markdown: bool = False) -> str:
    base = next((r for r in rows if r.what.startswith("python3 -c pass")), None)
    head = ("process", "ok/runs", "CPU ms", "wall ms", "wall over the bare interpreter ms")
    body = [(r.what, f"{r.ok}/{r.runs}", fmt(r.cpu_ms, ".1f"), fmt(r.wall_ms, ".1f"),
             fmt(r.wall_ms - base.wall_ms if base and r.wall_ms is not None and base.wall_ms is not None else None,
                 ".1f")) for r in rows]
    return render(head, body, markdown)


# -- held conversations, serve --------------------------------------------------


def held_memory(lab: Lab, count: int, deadline: float) -> dict[str, Any]:
    user = lab.pki.users[IDENTITY]
    out: dict[str, Any] = {}
    for method in ("pap", "eap-tls"):
        if time.monotonic() >= deadline:
            break
        argv = [sys.executable, str(ROOT / "bench" / "held.py"), "--method", method, "--count", str(count),
                "--cert", str(user.cert), "--key", str(user.key), "--ca", str(lab.pki.ca)]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
        out[method] = json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-500:]}
    return out


def serve_costs(checks: int, interval: float, probes: int) -> dict[str, Any]:
    argv = [sys.executable, str(ROOT / "bench" / "serve_cost.py"), "--checks", str(checks), "--interval",
            f"{interval:g}", "--probes", str(probes)]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=interval + 300, check=False)
    return json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-1000:]}


# -- goals ----------------------------------------------------------------------


def _row(rows: list[Row], case: str, concurrency: int = 1) -> Row | None:
    return next((r for r in rows if r.case == case and r.concurrency == concurrency), None)


def goals(rows: list[Row], shots: list[OneShot], memory: dict[str, Any], serve: dict[str, Any],
          high: int) -> list[tuple[str, str, bool | None]]:
    """Issue 14's goals: (goal, what was measured, met?) -- None: not measured in this run."""
    out: list[tuple[str, str, bool | None]] = []

    def add(goal: str, value: float | None, limit: float, shown: str, below: bool = True) -> None:
        met = None if value is None else (value <= limit if below else value >= limit)
        out.append((goal, shown if value is not None else "not measured", met))

    for case in ("eap-tls", "eap-tls-1.3", "eap-tls-ecdsa", "peap-mschapv2", "peap-tls"):
        r = _row(rows, case)
        add(f"{case}: CPU <= 1.5x the bare OpenSSL handshake", r.floor_ratio if r else None, 1.5,
            f"{fmt(r.probe_cpu_ms, '.2f')} ms vs floor {fmt(r.floor_ms, '.2f')} ms = {fmt(r.floor_ratio, '.2f')}x"
            if r else "")
        add(f"{case}: >= 5x less CPU than eapol_test", r.ref_ratio if r else None, 5.0,
            f"{fmt(r.ref_ratio, '.1f')}x less" if r else "", below=False)
    for conc in (1, high):
        r = _row(rows, "pap", conc)
        ratio = _div(r.probe_cpu_ms, r.ref_cpu_ms) if r else None
        add(f"pap x{conc}: CPU <= 0.6x radclient's", ratio, 0.6,
            f"{fmt(r.probe_cpu_ms, '.3f')} vs {fmt(r.ref_cpu_ms, '.3f')} ms = {fmt(ratio, '.2f')}x" if r else "")
        add(f"pap x{conc}: throughput >= radclient's", _div(r.probe_per_s, r.ref_per_s) if r else None, 1.0,
            f"{fmt(r.probe_per_s, '.0f')} vs {fmt(r.ref_per_s, '.0f')} auth/s" if r else "", below=False)
    by = {s.what: s for s in shots}
    pap, helped = by.get("radius-probe auth pap"), by.get("radius-probe --help")
    add("one-shot auth pap <= 120 ms wall", pap.wall_ms if pap else None, 120, f"{fmt(pap.wall_ms if pap else None, '.0f')} ms")
    add("radius-probe --help <= 80 ms wall", helped.wall_ms if helped else None, 80,
        f"{fmt(helped.wall_ms if helped else None, '.0f')} ms")
    sched = serve.get("scheduler", {})
    add(f"serve {sched.get('checks', '?')} checks / {sched.get('interval_s', '?')} s <= 10% of one core",
        sched["core_share"] * 100 if "core_share" in sched else None, 10, f"{sched.get('core_share', 0) * 100:.1f}%")
    probe = serve.get("probe", {})
    add("/probe adds <= 2 ms over the authentication (serve CPU)", probe.get("added_cpu_ms"), 2.0,
        f"+{probe.get('added_cpu_ms', 0):.2f} ms CPU, +{probe.get('added_wall_ms', 0):.2f} ms wall")
    for method, limit in (("pap", 16), ("eap-tls", 64)):
        kb = memory.get(method, {}).get("hwm_kb_per_conversation")
        add(f"held {method} conversation <= {limit} KB", kb, limit, f"{fmt(kb, '.1f')} KB")
    return out


def goals_text(items: list[tuple[str, str, bool | None]], markdown: bool = False) -> str:
    head = ("goal", "measured", "verdict")
    body = [(g, m, "met" if ok else "NOT met" if ok is False else "not measured") for g, m, ok in items]
    return render(head, body, markdown)


# -- main -----------------------------------------------------------------------


def tool_versions() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unavailable ({type(exc).__name__})"
        return ((done.stdout + done.stderr).strip().splitlines() or ["?"])[0]
    import ssl

    from OpenSSL import SSL

    return {"radclient": first_line(["radclient", "-v"]), "eapol_test": first_line(["eapol_test", "-v"]),
            "freeradius": first_line(["/usr/sbin/freeradius", "-v"]), "python": platform.python_version(),
            "python ssl (floor)": ssl.OPENSSL_VERSION,
            "pyOpenSSL's OpenSSL (probe)": SSL.SSLeay_version(SSL.SSLEAY_VERSION).decode()}


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.machine())
    return {"cpus": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true",
                   help="tiny counts, concurrency 1,4, short serve window: proves the bench runs (CI)")
    p.add_argument("--count", type=int, default=None, help=f"PAP authentications per tool (default {DEFAULT_PAP_COUNT})")
    p.add_argument("--eap-count", type=int, default=None,
                   help=f"EAP authentications per tool (default {DEFAULT_EAP_COUNT})")
    p.add_argument("--concurrency", default=None, help=f"comma-separated (default {DEFAULT_CONCURRENCY})")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    p.add_argument("--skip", default="", help="comma-separated parts to leave out: oneshot, memory, serve")
    p.add_argument("--held", type=int, default=None, help="held conversations per method (default 10000)")
    p.add_argument("--serve-checks", type=int, default=None, help="checks in the serve probe file (default 1000)")
    p.add_argument("--serve-interval", type=float, default=None, help="their interval, s (default 60)")
    p.add_argument("--time-limit", type=float, default=900.0, help="seconds for the table part (default 900)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    p.add_argument("--markdown", type=Path, default=None, help="also write the tables as Markdown to this file")
    args = p.parse_args(argv)
    names = [c for c in args.cases.split(",") if c]
    if unknown := set(names) - set(CASES):
        p.error(f"unknown cases: {', '.join(sorted(unknown))}")
    args.cases = [CASES[n] for n in names]
    args.skip = {s for s in args.skip.split(",") if s}
    if unknown := args.skip - {"oneshot", "memory", "serve"}:
        p.error(f"unknown --skip parts: {', '.join(sorted(unknown))}")
    smoke = args.smoke
    args.pap_count = args.count or (20 if smoke else DEFAULT_PAP_COUNT)
    args.eap_count = args.eap_count or (4 if smoke else DEFAULT_EAP_COUNT)
    try:
        args.concurrency = [int(c) for c in (args.concurrency or ("1,4" if smoke else DEFAULT_CONCURRENCY)).split(",")]
    except ValueError:
        p.error("--concurrency: comma-separated whole numbers")
    if min(args.concurrency + [args.pap_count, args.eap_count]) < 1:
        p.error("--count, --eap-count and --concurrency must be at least 1")
    args.held = args.held or (200 if smoke else 10000)
    args.serve_checks = args.serve_checks or (20 if smoke else 1000)
    args.serve_interval = args.serve_interval or (2.0 if smoke else 60.0)
    args.oneshot_runs = 2 if smoke else ONESHOT_RUNS
    args.probes = 10 if smoke else 200
    return args


def missing_tools() -> list[str]:
    missing = [t for t in ("radclient", "eapol_test") if shutil.which(t) is None]
    return missing + ([] if freeradius_available() else ["/usr/sbin/freeradius"])


def start_lab(workdir: Path) -> tuple[FreeRadiusServer, Lab]:
    secret, password = secrets.token_urlsafe(18), secrets.token_urlsafe(12)
    pki = init_pki(workdir / "pki")
    eap = EapConfig(ca_file=pki.ca, server_cert=pki.server_chain, server_key=pki.server_key, tls_max_version="1.3",
                    session_cache=True)
    server = FreeRadiusServer(workdir / "freeradius", secret, [User(IDENTITY, password)], eap=eap)
    secret_file, password_file = workdir / "secret", workdir / "password"
    for path, value in ((secret_file, secret), (password_file, password)):
        path.write_text(value + "\n")
        path.chmod(0o600)
    server.start()
    return server, Lab(server.port, secret, password, pki, workdir, secret_file, password_file)


def report(args: argparse.Namespace, rows: list[Row], shots: list[OneShot], imports: list[str],
           memory: dict[str, Any], serve: dict[str, Any], load: tuple[str, str], markdown: bool) -> str:
    high = max(args.concurrency)
    parts = [table(rows, markdown), "", "Where one authentication's CPU goes (ms, concurrency 1):", "",
             breakdown_table(rows, markdown)]
    if shots:
        parts += ["", "One-shot processes (each run a new process, one after another):", "",
                  oneshot_table(shots, markdown), "", "Slowest imports of `radius-probe auth --method pap` "
                  "(cumulative, python -X importtime):", "", *(("    " + i) for i in imports)]
    if memory:
        parts += ["", "Held conversations (waiting for the server; VmHWM delta / count): " + "; ".join(
            f"{m}: {v.get('hwm_kb_per_conversation', float('nan')):.1f} KB x {v.get('count', '?')}"
            for m, v in memory.items())]
    if serve:
        s, p = serve.get("scheduler", {}), serve.get("probe", {})
        if s:
            parts += ["", f"serve: {s['checks']} PAP checks every {s['interval_s']:g} s against the emulator: "
                      f"{s['cpu_s']:.2f} s CPU in a {s['window_s']:.0f} s window = {s['core_share'] * 100:.1f}% of "
                      f"one core ({s['cpu_ms_per_check']:.2f} ms per check)"]
        if p:
            parts += [f"/probe (PAP, {p['requests']} sequential requests, {p['ok']} ok): serve CPU "
                      f"{p['serve_cpu_ms']:.2f} ms and wall {p['wall_ms']:.2f} ms per request; the plain loop "
                      f"{p['loop_cpu_ms']:.2f} ms CPU, {p['loop_wall_ms']:.2f} ms wall: /probe adds "
                      f"{p['added_cpu_ms']:.2f} ms CPU, {p['added_wall_ms']:.2f} ms wall"]
        if "error" in serve:
            parts += ["", "serve: " + serve["error"]]
    parts += ["", "Goals of issue 14:", "", goals_text(goals(rows, shots, memory, serve, high), markdown),
              "", f"load average (1, 5, 15 min) before: {load[0]}; after: {load[1]}"]
    notes = [f"  {r.case} x{r.concurrency}: {r.note}" for r in rows if r.note]
    failures = [f"{r.case} x{r.concurrency}: first failure:\n{r.first_failure}" for r in rows if r.first_failure]
    if notes:
        parts += ["", *notes]
    if failures:
        parts += ["", *failures]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if missing := missing_tools():
        print(f"bench: missing {', '.join(missing)} (Debian: freeradius freeradius-utils eapoltest)", file=sys.stderr)
        return 2
    load_before = load_average()
    deadline = time.monotonic() + args.time_limit
    shots: list[OneShot] = []
    imports: list[str] = []
    memory: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="radius-probe-bench-") as tmp:
        (Path(tmp) / "freeradius").mkdir()
        server, lab = start_lab(Path(tmp))
        try:
            rows = measure(lab, args, deadline)
            if "oneshot" not in args.skip:
                print("[bench] one-shot processes ...", file=sys.stderr, flush=True)
                shots, imports = oneshots(lab, args.oneshot_runs, deadline + 300)
            if "memory" not in args.skip:
                print(f"[bench] {args.held} held conversations ...", file=sys.stderr, flush=True)
                memory = held_memory(lab, args.held, deadline + 600)
        finally:
            server.stop()
    serve: dict[str, Any] = {}
    if "serve" not in args.skip:
        print(f"[bench] serve: {args.serve_checks} checks / {args.serve_interval:g} s, /probe ...", file=sys.stderr,
              flush=True)
        serve = serve_costs(args.serve_checks, args.serve_interval, args.probes)
    load = (load_before, load_average())
    print(report(args, rows, shots, imports, memory, serve, load, markdown=False))
    if args.markdown is not None:
        args.markdown.write_text(report(args, rows, shots, imports, memory, serve, load, markdown=True) + "\n")
    write_results(args, rows, shots, imports, memory, serve, load)
    print(f"results: {args.out}")
    broken = probe_failures(rows, shots, memory, serve)
    if broken:
        print("bench: radius-probe did not complete: " + "; ".join(broken), file=sys.stderr)
    return 1 if broken and args.smoke else 0


def probe_failures(rows: list[Row], shots: list[OneShot], memory: dict[str, Any], serve: dict[str, Any]) -> list[str]:
    """What of radius-probe's own part failed (the smoke run's exit status; references may be missing)."""
    out = []
    for r in rows:
        ok, _, done = r.probe_ok.partition("/")
        if not done or ok != done or done == "0":
            out.append(f"{r.case} x{r.concurrency} {r.probe_ok}")
    out += [f"{s.what} {s.ok}/{s.runs}" for s in shots if s.what.startswith("radius-probe") and s.ok != s.runs]
    out += [f"held {m}" for m, v in memory.items() if "error" in v]
    if "error" in serve:
        out.append("serve")
    return out


def write_results(args: argparse.Namespace, rows: list[Row], shots: list[OneShot], imports: list[str],
                  memory: dict[str, Any], serve: dict[str, Any], load: tuple[str, str]) -> None:
    doc = {
        "schema": 2,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {**machine(), **tool_versions()},
        "load_average": {"before": load[0], "after": load[1]},
        "params": {"pap_count": args.pap_count, "eap_count": args.eap_count, "concurrency": args.concurrency,
                   "cases": [c.name for c in args.cases], "time_limit_s": args.time_limit, "smoke": args.smoke},
        "notes": "probe CPU = the loop's own getrusage per authentication; reference CPU = user+sys of the tool's "
                 "processes via os.wait4; floor = a bare ssl MemoryBIO handshake, both ends (bench/floor.py); "
                 "server: freeradius -f -xx, the same for all.",
        "rows": [{**asdict(r), "ref_ratio": r.ref_ratio, "floor_ratio": r.floor_ratio} for r in rows],
        "oneshot": [asdict(s) for s in shots], "importtime_top": imports, "held": memory, "serve": serve,
        "goals": [{"goal": g, "measured": m, "met": ok}
                  for g, m, ok in goals(rows, shots, memory, serve, max(args.concurrency))],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
