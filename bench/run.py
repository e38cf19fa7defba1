"""Client cost of radius-probe against radclient and eapol_test, on one FreeRADIUS, in one run.

Why ratios: absolute milliseconds depend on the machine; "how much client CPU
does radius-probe spend per authentication compared with the tools people
script today (radclient for PAP, an eapol_test loop for EAP)" does not, as
long as every tool talks to the same server in the same run. So this script
starts ONE FreeRADIUS on 127.0.0.1 (tests/servers/freeradius.py, with a lab
PKI from probe.pki in a temporary directory) and measures, for each method:

* radius-probe: ``bench/_probe_loop.py`` authenticating N times in one process
  over a shared RadiusClient. Two rows: the whole process (interpreter start
  and imports included, from ``os.wait4``) and the loop alone (its own
  ``getrusage`` deltas).
* PAP baselines: one radclient process fed a file of N requests (``-p C``),
  and N separate radclient runs.
* EAP baselines: N runs of ``eapol_test -c conf -a 127.0.0.1 -p PORT -s SECRET -r 0``.

Client CPU (user+sys) of every child comes from ``os.wait4`` on that child's
PID, so the FreeRADIUS server (also our child) never counts; peak RSS comes
from GNU time for the baselines and from VmHWM for radius-probe (see "child
processes" below). Each tool gets the same count and concurrency; all of it is bounded by
``--time-limit``. Results print as a table and go to ``--out`` as JSON
(bench/results/ is git-ignored). Nothing here asserts on time.

Usage: python bench/run.py [--count N] [--eap-count M] [--concurrency C]
       [--methods pap,eap-tls,peap-mschapv2] [--tls-max 1.2|1.3]
       [--time-limit S] [--out bench/results/latest.json]
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

from probe.pki import Pki, init_pki
from tests.servers.freeradius import (
    EapConfig,
    FreeRadiusServer,
    User,
    freeradius_available,
)

HOST = "127.0.0.1"
IDENTITY = "alice"  # the lab PKI's valid RSA client certificate; also the PAP/MSCHAPv2 user
SERVER_NAME = "nps.lab.test"
PROBE_LOOP = ROOT / "bench" / "_probe_loop.py"
METHODS = ("pap", "eap-tls", "peap-mschapv2")
DEFAULT_PAP_COUNT = 200
DEFAULT_EAP_COUNT = 50
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
    """One line of the table: one tool doing one method ``count`` times."""

    tool: str
    method: str
    count: int
    done: int
    ok: int
    cpu_ms_per_auth: float | None
    wall_ms_per_auth: float | None
    peak_rss_mb: float | None
    cpu_ratio: float | None = None  # this row's CPU per auth / radius-probe (process) CPU per auth, same method
    note: str = ""
    first_failure: str | None = None


@dataclass
class Lab:
    """Everything the tools need to reach the one server; secrets live only here and in 0600 files."""

    port: int
    secret: str = field(repr=False)
    password: str = field(repr=False)
    pki: Pki
    workdir: Path
    secret_file: Path
    tls_max: str

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


def _spawn(argv: Sequence[str], log: Path, stdin: bytes | None, rss_file: Path | None) -> _Child:
    """Start one child (under GNU time when ``rss_file`` is given); stdout+stderr go to ``log``."""
    if rss_file is not None and GNU_TIME is not None:
        argv = [GNU_TIME, "-o", str(rss_file), "-f", "%M", *argv]
    with log.open("wb") as out:
        proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
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
             stdin: bytes | None = None, measure_rss: bool = False) -> Run:
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
            running.append(_spawn(argv, logdir / f"{name}.log", stdin, rss_file))
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


def probe_spec(lab: Lab, method: str, count: int, concurrency: int, deadline: float, report: Path) -> dict[str, Any]:
    """What _probe_loop.py reads on stdin (secrets included, so never on a command line)."""
    tls = method == "eap-tls"
    user = lab.pki.users[IDENTITY]
    return {
        "method": method, "host": HOST, "port": lab.port, "secret": lab.secret, "identity": IDENTITY,
        "password": None if tls else lab.password, "cert": str(user.cert) if tls else None,
        "key": str(user.key) if tls else None, "ca": str(lab.pki.ca), "server_name": SERVER_NAME,
        "tls_max": lab.tls_max if tls else None, "count": count, "concurrency": concurrency,
        "time_limit_s": max(0.0, deadline - time.monotonic()), "timeout_s": RADIUS_TIMEOUT_S,
        "retries": RADIUS_RETRIES, "report": str(report),
    }


def probe_rows(lab: Lab, method: str, count: int, concurrency: int, deadline: float) -> list[Row]:
    """radius-probe in its own process: one row for the process, one for the loop alone."""
    report_path = lab.workdir / f"probe-{method}.json"
    spec = probe_spec(lab, method, count, concurrency, deadline, report_path)
    proc = run_many(f"probe-{method}", [sys.executable, str(PROBE_LOOP)], 1, 1, deadline, lab.workdir,
                    lambda rc, _out: int(rc == 0), lab.redact, stdin=json.dumps(spec).encode())
    if not proc.started:
        return [Row("radius-probe (process)", method, count, 0, 0, None, None, None, note=SKIPPED)]
    if not report_path.exists() or proc.killed:
        return [Row("radius-probe (process)", method, count, 0, 0, None, None, None,
                    first_failure=proc.first_failure or "the probe loop wrote no report")]
    report = json.loads(report_path.read_text())
    done, ok, rss = int(report["done"]), int(report["ok"]), report["vm_hwm_kb"] / 1024
    failure = lab.redact(json.dumps(report["first_failure"])) if report["first_failure"] else proc.first_failure
    loop_cpu = report["loop_user_s"] + report["loop_sys_s"]
    startup = f"interpreter start + imports: {report['startup_cpu_s'] * 1000:.0f} ms CPU"
    if done < count:
        startup += f"; {SKIPPED} after {done}"
    return [
        Row("radius-probe (process)", method, count, done, ok, per_auth(proc.user_s + proc.sys_s, done),
            per_auth(proc.wall_s, done), rss, note=startup, first_failure=failure),
        Row("radius-probe (loop only)", method, count, done, ok, per_auth(loop_cpu, done),
            per_auth(report["loop_wall_s"], done), rss, note="shared RadiusClient, one process"),
    ]


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


def radclient_rows(lab: Lab, count: int, concurrency: int, deadline: float) -> list[Row]:
    """radclient fed one file of N requests, then N radclient runs of one request each."""
    batch_file = write_requests(lab.workdir / "pap-requests.txt", lab, count)
    one_file = write_requests(lab.workdir / "pap-request.txt", lab, 1)
    batch = run_many("radclient-batch", radclient_argv(lab, batch_file, concurrency), 1, 1, deadline, lab.workdir,
                     radclient_accepts, lab.redact, per_child=count, measure_rss=True)
    single_argv = radclient_argv(lab, one_file, 1)
    singles = run_many("radclient-single", single_argv, count, concurrency, deadline, lab.workdir,
                       radclient_accepts, lab.redact)
    singles_rss = sampled_rss_mb("radclient-single", single_argv, deadline, lab, radclient_accepts)
    batch_done = count if batch.started and not batch.killed else 0
    batch_rss = batch.peak_rss_kb / 1024 if batch.peak_rss_kb is not None else None
    return [
        Row("radclient (one process, -f N)", "pap", count, batch_done, batch.ok,
            per_auth(batch.user_s + batch.sys_s, batch_done), per_auth(batch.wall_s, batch_done), batch_rss,
            note=f"-p {concurrency}" + ("; run under GNU time for RSS" if GNU_TIME else ""),
            first_failure=batch.first_failure),
        row_from_run("radclient (N processes)", "pap", count, singles, singles_rss, "one radclient per request"),
    ]


# -- eapol_test -----------------------------------------------------------------


def eapol_config(lab: Lab, method: str) -> Path:
    """The one-network wpa_supplicant config eapol_test reads; server certificate checked like ours."""
    pki = lab.pki
    common = {"key_mgmt": "IEEE8021X", "eapol_flags": "0", "ca_cert": f'"{pki.ca}"',
              "domain_suffix_match": f'"{SERVER_NAME}"'}
    if method == "eap-tls":
        tls13 = "0" if lab.tls_max == "1.3" else "1"
        network = {"eap": "TLS", "identity": f'"{IDENTITY}"', "client_cert": f'"{pki.users[IDENTITY].cert}"',
                   "private_key": f'"{pki.users[IDENTITY].key}"', "phase1": f'"tls_disable_tlsv1_3={tls13}"'}
    else:
        network = {"eap": "PEAP", "identity": f'"{IDENTITY}"', "anonymous_identity": '"anonymous"',
                   "password": f'"{lab.password}"', "phase1": '"peaplabel=0"', "phase2": '"auth=MSCHAPV2"'}
    lines = ["network={", *(f"    {k}={v}" for k, v in {**common, **network}.items()), "}"]
    path = lab.workdir / f"eapol-{method}.conf"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def eapol_success(returncode: int, output: str) -> int:
    """1 for SUCCESS with MS-MPPE keys equal to the MSK eapol_test derived (its exit code 0), else 0."""
    return int(returncode == 0 and "MPPE keys OK: 1  mismatch: 0" in output)


def eapol_rows(lab: Lab, method: str, count: int, concurrency: int, deadline: float) -> list[Row]:
    """N eapol_test runs, the way people script it.

    The (per-run, random) secret is on eapol_test's command line: it has no option to read it from a file.
    """
    argv = ["eapol_test", "-c", str(eapol_config(lab, method)), "-a", HOST, "-p", str(lab.port), "-s", lab.secret,
            "-r", "0", "-t", str(EAPOL_TIMEOUT_S)]
    run = run_many(f"eapol-{method}", argv, count, concurrency, deadline, lab.workdir, eapol_success, lab.redact)
    rss = sampled_rss_mb(f"eapol-{method}", argv, deadline, lab, eapol_success)
    return [row_from_run("eapol_test loop", method, count, run, rss, "one eapol_test per authentication")]


# -- results --------------------------------------------------------------------


def per_auth(seconds: float, done: int) -> float | None:
    return seconds * 1000 / done if done else None


def row_from_run(tool: str, method: str, count: int, run: Run, rss_mb: float | None, note: str) -> Row:
    done = run.started - run.killed
    if run.started < count:
        note += f"; {SKIPPED} after {run.started}"
    if run.killed:
        note += f"; {run.killed} killed at the time limit"
    return Row(tool, method, count, done, run.ok, per_auth(run.user_s + run.sys_s, done), per_auth(run.wall_s, done),
               rss_mb, note=note, first_failure=run.first_failure)


def add_ratios(rows: list[Row]) -> None:
    """CPU per auth of each row divided by radius-probe's whole-process CPU per auth for the same method."""
    for method in {r.method for r in rows}:
        ref = next((r.cpu_ms_per_auth for r in rows if r.method == method and r.tool == "radius-probe (process)"), None)
        for r in rows:
            if r.method == method and ref and r.cpu_ms_per_auth is not None:
                r.cpu_ratio = r.cpu_ms_per_auth / ref


def target(rows: list[Row]) -> dict[str, Any]:
    """The issue's goal: radius-probe uses >= 10x less client CPU per EAP-TLS authentication than an eapol_test loop."""
    def cpu(tool: str) -> float | None:
        return next((r.cpu_ms_per_auth for r in rows if r.method == "eap-tls" and r.tool == tool
                     and r.ok == r.done and r.done), None)

    base, process, loop = cpu("eapol_test loop"), cpu("radius-probe (process)"), cpu("radius-probe (loop only)")
    if base is None or process is None or loop is None:
        return {"measured": False, "met": None}
    return {"measured": True, "eapol_over_probe_process": base / process, "eapol_over_probe_loop": base / loop,
            "met": base / process >= 10, "met_loop_only": base / loop >= 10}


def fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "-" if value is None else format(value, spec) + unit


def table(rows: list[Row]) -> str:
    head = ("tool", "method", "count", "ok", "CPU ms/auth", "wall ms/auth", "peak RSS MB", "CPU / probe")
    body = [(r.tool, r.method, str(r.count), f"{r.ok}/{r.done}", fmt(r.cpu_ms_per_auth, ".2f"),
             fmt(r.wall_ms_per_auth, ".2f"), fmt(r.peak_rss_mb, ".1f"), fmt(r.cpu_ratio, ".2f", "x")) for r in rows]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def verdict(goal: dict[str, Any]) -> str:
    if not goal["measured"]:
        return "EAP-TLS target (>= 10x less client CPU than an eapol_test loop): not measured (see failures above)"
    parts = []
    ratios = (("whole process", goal["eapol_over_probe_process"]), ("loop only", goal["eapol_over_probe_loop"]))
    for label, ratio in ratios:
        if ratio >= 1:
            parts.append(f"radius-probe ({label}) uses {ratio:.1f}x less client CPU than the eapol_test loop")
        else:
            parts.append(f"radius-probe ({label}) uses {1 / ratio:.1f}x MORE client CPU than the eapol_test loop")
    met = "met" if goal["met"] else "NOT met"
    return "EAP-TLS per authentication: " + "; ".join(parts) + f". Target >= 10x less: {met}."


def tool_versions() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unavailable ({type(exc).__name__})"
        return ((done.stdout + done.stderr).strip().splitlines() or ["?"])[0]
    return {"radclient": first_line(["radclient", "-v"]), "eapol_test": first_line(["eapol_test", "-v"]),
            "freeradius": first_line(["/usr/sbin/freeradius", "-v"]), "python": platform.python_version()}


# -- main -----------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=None,
                   help=f"PAP authentications per tool (default {DEFAULT_PAP_COUNT}); also caps --eap-count")
    p.add_argument("--eap-count", type=int, default=None,
                   help=f"EAP authentications per tool (default {DEFAULT_EAP_COUNT}, or --count if smaller)")
    p.add_argument("--concurrency", type=int, default=1, help="authentications in flight per tool (default 1)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    p.add_argument("--tls-max", choices=("1.2", "1.3"), default="1.2", help="EAP-TLS version for every tool")
    p.add_argument("--time-limit", type=float, default=300.0, help="seconds for the whole run (default 300)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    args = p.parse_args(argv)
    args.methods = [m for m in args.methods.split(",") if m]
    if unknown := set(args.methods) - set(METHODS):
        p.error(f"unknown methods: {', '.join(sorted(unknown))}")
    if min(args.concurrency, args.count or 1, args.eap_count or 1) < 1:
        p.error("--count, --eap-count and --concurrency must be at least 1")
    args.pap_count = args.count or DEFAULT_PAP_COUNT
    args.eap_count = args.eap_count or min(args.count or DEFAULT_EAP_COUNT, DEFAULT_EAP_COUNT)
    return args


def missing_tools() -> list[str]:
    missing = [t for t in ("radclient", "eapol_test") if shutil.which(t) is None]
    return missing + ([] if freeradius_available() else ["/usr/sbin/freeradius"])


def measure(lab: Lab, args: argparse.Namespace, deadline: float) -> list[Row]:
    rows: list[Row] = []
    for method in args.methods:
        count = args.pap_count if method == "pap" else args.eap_count
        print(f"[bench] {method}: {count} authentications per tool ...", file=sys.stderr, flush=True)
        rows += probe_rows(lab, method, count, args.concurrency, deadline)
        if method == "pap":
            rows += radclient_rows(lab, count, args.concurrency, deadline)
        else:
            rows += eapol_rows(lab, method, count, args.concurrency, deadline)
    add_ratios(rows)
    return rows


def start_lab(workdir: Path, tls_max: str) -> tuple[FreeRadiusServer, Lab]:
    secret, password = secrets.token_urlsafe(18), secrets.token_urlsafe(12)
    pki = init_pki(workdir / "pki")
    eap = EapConfig(ca_file=pki.ca, server_cert=pki.server_chain, server_key=pki.server_key, tls_max_version=tls_max)
    server = FreeRadiusServer(workdir / "freeradius", secret, [User(IDENTITY, password)], eap=eap)
    secret_file = workdir / "secret"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    server.start()
    return server, Lab(server.port, secret, password, pki, workdir, secret_file, tls_max)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if missing := missing_tools():
        print(f"bench: missing {', '.join(missing)} (Debian: freeradius freeradius-utils eapoltest)", file=sys.stderr)
        return 2
    deadline = time.monotonic() + args.time_limit
    with tempfile.TemporaryDirectory(prefix="radius-probe-bench-") as tmp:
        (Path(tmp) / "freeradius").mkdir()
        server, lab = start_lab(Path(tmp), args.tls_max)
        try:
            rows = measure(lab, args, deadline)
        finally:
            server.stop()
    goal = target(rows)
    print(table(rows))
    print("\n".join(f"  {r.tool} / {r.method}: {r.note}" for r in rows if r.note))
    for r in rows:
        if r.first_failure:
            print(f"\n{r.tool} / {r.method}: first failure:\n{r.first_failure}")
    if "eap-tls" in args.methods:
        print("\n" + verdict(goal))
    write_results(args, rows, goal)
    print(f"results: {args.out}")
    return 0


def write_results(args: argparse.Namespace, rows: list[Row], goal: dict[str, Any]) -> None:
    doc = {
        "schema": 1,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(), **tool_versions()},
        "params": {"pap_count": args.pap_count, "eap_count": args.eap_count, "concurrency": args.concurrency,
                   "methods": args.methods, "tls_max": args.tls_max, "time_limit_s": args.time_limit},
        "notes": "CPU = user+sys of the client process(es) via os.wait4; ratio = row CPU/auth divided by "
                 "radius-probe (process) CPU/auth for the same method; server runs freeradius -xx (same for all).",
        "rows": [asdict(r) for r in rows],
        "eap_tls_target_10x": goal,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
