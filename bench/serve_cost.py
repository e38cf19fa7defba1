"""What ``radius-probe serve`` costs: the scheduler with many checks, and ``/probe`` over the authentication.

Against the emulator (``radius-probe emulator`` on 127.0.0.1, its lab users), PAP:

* scheduler: a probe file of ``--checks`` checks (default 1,000), each every
  ``--interval`` seconds (default 60); after the first (jittered) runs have settled,
  serve's own CPU over one whole interval, from /proc/PID/stat, as a share of one core;
* /probe: a second serve whose one check runs once an hour; ``--probes`` sequential
  ``GET /probe?target=lab&module=alice`` requests; serve's CPU and the client's wall
  time per request, against the same authentication in a plain loop
  (bench/_probe_loop.py, concurrency 1) in the same run: the difference is what /probe adds.

Every process here is started by this script and stopped by its PID. Usage:
``python bench/serve_cost.py [--checks 1000] [--interval 60] [--probes 200]``; prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "probe.cli"]
LAB_SECRET = "radius-probe-lab"
LAB_PASSWORD = "Passw0rd!"
TICK = os.sysconf("SC_CLK_TCK")
JITTER_S = 15.0  # probe.scheduler.MAX_START_JITTER_S: the first runs are spread over at most this


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("RADIUS_PROBE_")}
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), out.get("PYTHONPATH", "")) if p)
    return out


def cpu_s(pid: int) -> float:
    """utime + stime of one process (its own, not its children's), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM to the process we started, by its PID; SIGKILL if it does not go."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def start_emulator(log: Path) -> tuple[subprocess.Popen[str], int]:
    port = free_udp_port()
    proc = subprocess.Popen([*CLI, "emulator", "--listen", f"127.0.0.1:{port}", "--duration", "900"],
                            stdout=subprocess.PIPE, stderr=log.open("w"), text=True, env=env(), cwd=ROOT)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if f"listening on 127.0.0.1:{port}" not in first:
        stop(proc)
        raise RuntimeError(first + log.read_text())
    return proc, port


def probe_file(path: Path, port: int, workdir: Path, checks: int, interval: float) -> Path:
    secret, password = workdir / "secret.txt", workdir / "password.txt"
    secret.write_text(LAB_SECRET + "\n")
    password.write_text(LAB_PASSWORD + "\n")
    lines = ["modules:", f"  alice: {{method: pap, identity: alice, password_file: {password}, timeout: 2, retries: 1}}",
             "targets:", f"  lab: {{address: '127.0.0.1:{port}', secret_file: {secret}}}", "checks:"]
    lines += [f"  - {{name: c{i:05d}, target: lab, module: alice, interval: {interval:g}, "
              "expect: {message_authenticator: optional}}" for i in range(checks)]
    path.write_text("\n".join(lines) + "\n")
    return path


def start_serve(files: list[Path], log: Path, deadline: float) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen([*CLI, "serve", *map(str, files), "--listen", "127.0.0.1:0"],
                            stdout=subprocess.DEVNULL, stderr=log.open("w"), env=env(), cwd=ROOT)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited {proc.returncode}: {log.read_text()[-2000:]}")
        for line in log.read_text().splitlines():
            event = json.loads(line) if line.startswith("{") else {}
            if event.get("event") == "listening":
                return proc, int(event["address"].rsplit(":", 1)[1])
        time.sleep(0.1)
    stop(proc)
    raise RuntimeError("serve did not listen in time")


def scheduler_cost(workdir: Path, port: int, checks: int, interval: float, settle: float) -> dict[str, Any]:
    path = probe_file(workdir / "many.yml", port, workdir, checks, interval)
    proc, _ = start_serve([path], workdir / "serve-many.log", time.monotonic() + 60)
    try:
        time.sleep(settle)  # start-up and the jittered first runs
        c0, t0 = cpu_s(proc.pid), time.monotonic()
        time.sleep(interval)
        c1, t1 = cpu_s(proc.pid), time.monotonic()
    finally:
        stop(proc)
    return {"checks": checks, "interval_s": interval, "window_s": t1 - t0, "cpu_s": c1 - c0,
            "core_share": (c1 - c0) / (t1 - t0), "cpu_ms_per_check": (c1 - c0) * 1000 / checks}


def loop_reference(port: int, workdir: Path, count: int) -> dict[str, float]:
    """The same PAP authentication in a plain loop (concurrency 1): CPU and wall per authentication."""
    report = workdir / "loop.json"
    spec = {"method": "pap", "host": "127.0.0.1", "port": port, "secret": LAB_SECRET, "identity": "alice",
            "password": LAB_PASSWORD, "cert": None, "key": None, "ca": None, "server_name": None, "tls_max": None,
            "count": count, "concurrency": 1, "time_limit_s": 120, "timeout_s": 2, "retries": 1,
            "report": str(report)}
    subprocess.run([sys.executable, str(ROOT / "bench" / "_probe_loop.py")], input=json.dumps(spec).encode(),
                   check=True, env=env(), cwd=ROOT, timeout=180)
    r = json.loads(report.read_text())
    return {"cpu_ms": (r["loop_user_s"] + r["loop_sys_s"]) * 1000 / r["done"],
            "wall_ms": r["loop_wall_s"] * 1000 / r["done"], "ok": r["ok"], "done": r["done"]}


def probe_cost(workdir: Path, port: int, count: int) -> dict[str, Any]:
    path = probe_file(workdir / "one.yml", port, workdir, 1, 3600)
    proc, http_port = start_serve([path], workdir / "serve-one.log", time.monotonic() + 60)
    url = f"http://127.0.0.1:{http_port}/probe?target=lab&module=alice"
    ok = 0
    try:
        time.sleep(1.0)
        urllib.request.urlopen(url, timeout=30).read()  # warm-up: the first one loads what /probe needs
        c0, t0 = cpu_s(proc.pid), time.perf_counter()
        for _ in range(count):
            with urllib.request.urlopen(url, timeout=30) as answer:
                body = answer.read().decode()
            ok += int("probe_success 1" in body)
        c1, t1 = cpu_s(proc.pid), time.perf_counter()
    finally:
        stop(proc)
    return {"requests": count, "ok": ok, "serve_cpu_ms": (c1 - c0) * 1000 / count,
            "wall_ms": (t1 - t0) * 1000 / count}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checks", type=int, default=1000)
    p.add_argument("--interval", type=float, default=60.0)
    p.add_argument("--settle", type=float, default=None, help="seconds before measuring (default: the jitter bound)")
    p.add_argument("--probes", type=int, default=200)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="radius-probe-serve-bench-") as tmp:
        workdir = Path(tmp)
        emulator, port = start_emulator(workdir / "emulator.log")
        try:
            out: dict[str, Any] = {}
            loop = loop_reference(port, workdir, a.probes)
            probe = probe_cost(workdir, port, a.probes)
            out["probe"] = {**probe, "loop_cpu_ms": loop["cpu_ms"], "loop_wall_ms": loop["wall_ms"],
                            "added_cpu_ms": probe["serve_cpu_ms"] - loop["cpu_ms"],
                            "added_wall_ms": probe["wall_ms"] - loop["wall_ms"]}
            settle = a.settle if a.settle is not None else min(a.interval, JITTER_S) + 2.0
            out["scheduler"] = scheduler_cost(workdir, port, a.checks, a.interval, settle)
        finally:
            stop(emulator)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
