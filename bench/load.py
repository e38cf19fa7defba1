"""The load goals of issue 15, measured: N concurrent conversations held by the emulator, from one process.

For each row it starts ``radius-probe emulator`` (users probe-0 .. probe-N-1 whose push is approved after
``--hold`` seconds: the planted delay) with ``--metrics`` on loopback, then ``radius-probe load --concurrency N
--count N --json`` (each user authenticates once and waits out the hold), and reports:

* requests lost: the host's UDP RcvbufErrors delta over the run (both sides live on this host), the
  emulator's socket drops (/proc/net/udp), the load's sent/received datagrams and retransmissions;
* client memory: the load process's peak RSS (``os.wait4``), and per conversation against a small baseline run;
  the emulator's VmHWM;
* client CPU (user+sys, ``os.wait4``);
* timing error: the measured time to the final answer minus the planted hold, at p50/p99/max.

Everything runs on 127.0.0.1 and stops by itself (every child is bounded by ``--time-limit``). Nothing here
asserts; the table is for bench/LOAD-RESULTS.md.

Usage: python bench/load.py [--rows pap:1000,pap:10000,peap-mschapv2:1000] [--hold 30] [--workers 1] [--pace 2000]
       [--time-limit 300] [--out bench/results/load.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "probe.cli"]
SECRET = "radius-probe-lab"


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("RADIUS_PROBE_")}
    e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vm_hwm_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def metrics(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name.split("{")[0]] = out.get(name.split("{")[0], 0.0) + float(value)
    return out


def run_row(work: Path, pki: Path, method: str, n: int, hold: float, workers: int, limit: float,
            pace: float = 2000.0) -> dict:
    users = {f"probe-{i}": {"password": "Passw0rd!", "mfa": "approve", "delay": hold} for i in range(n)}
    config = work / f"emulator-{n}.yaml"
    doc: dict = {"users": users, "default_users": False}
    if method != "pap":  # every conversation keeps its TLS connection through the MFA hold
        doc["limits"] = {"max_tls_conversations": max(1000, 2 * n)}
    config.write_text(yaml.safe_dump(doc))
    port, mport = free_port(), free_port()
    em_log = work / f"emulator-{n}.log"  # a file, not a pipe: its banner lists every user (a pipe would fill)
    with em_log.open("w") as log:
        em = subprocess.Popen([*CLI, "emulator", "--listen", f"127.0.0.1:{port}", "--config", str(config), "--pki",
                               str(pki), "--duration", str(limit), "--metrics", f"127.0.0.1:{mport}",
                               "--workers", str(workers)], stdout=log, stderr=subprocess.STDOUT, text=True,
                              env=env())
    for _ in range(300):
        if "emulator metrics on" in em_log.read_text() or em.poll() is not None:
            break
        time.sleep(0.1)
    if "emulator metrics on" not in em_log.read_text():
        raise SystemExit(f"emulator did not start: {em_log.read_text()[-2000:]}")
    time.sleep(0.5)
    (work / "secret").write_text(SECRET + "\n")
    (work / "pw").write_text("Passw0rd!\n")
    args = [*CLI, "load", f"127.0.0.1:{port}", "--secret-file", str(work / "secret"), "--method", method,
            "--identity", "probe-{n}", "--users", str(n), "--password-file", str(work / "pw"), "--allow-unsigned",
            "--concurrency", str(n), "--count", str(n), "--timeout", str(hold + 30), "--retries", "0",
            "--window", str(max(60.0, hold + 10)), "--json", "--no-progress", "--pace", str(pace)]
    if method != "pap":
        args += ["--ca", str(pki / "ca.pem"), "--server-name", "nps.lab.test"]
    before = metrics(mport)
    started = time.monotonic()
    out_path, err_path = work / "load.out", work / "load.err"
    with out_path.open("w") as out_f, err_path.open("w") as err_f:
        load = subprocess.Popen(args, stdout=out_f, stderr=err_f, text=True, env=env())
        deadline = time.monotonic() + limit
        while True:  # os.wait4 reaps the child itself: its own rusage (CPU, peak RSS), nobody else's
            pid, status, usage = os.wait4(load.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                load.kill()
            time.sleep(0.1)
        load.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    out, err = out_path.read_text(), err_path.read_text()
    doc = json.loads(out) if out.strip() else {"error": err}
    time.sleep(0.5)
    after = metrics(mport)
    em_hwm = vm_hwm_kib(em.pid)
    em.terminate()
    em.wait(timeout=30)
    final = doc.get("final_response", {}).get("accept", {})
    row = {
        "method": method, "concurrent": n, "hold_s": hold, "workers": workers, "pace": pace, "exit_code": load.returncode,
        "wall_s": round(wall, 1), "finished": doc.get("finished"), "accepted": doc.get("results", {}).get("accept"),
        "sent": doc.get("datagrams", {}).get("sent"), "received": doc.get("datagrams", {}).get("received"),
        "retransmitted": doc.get("datagrams", {}).get("retransmitted"),
        "rcvbuf_errors_delta": (doc.get("kernel", {}).get("delta") or {}).get("rcvbuf_errors"),
        "emulator_received": after["radius_emulator_requests_received_total"]
                             - before["radius_emulator_requests_received_total"],
        "emulator_socket_drops": after.get("radius_emulator_socket_drops_total"),
        "emulator_vmhwm_mib": round(em_hwm / 1024, 1) if em_hwm else None,
        "p50_error_ms": round((final["p50_s"] - hold) * 1000, 2) if "p50_s" in final else None,
        "p99_error_ms": round((final["p99_s"] - hold) * 1000, 2) if "p99_s" in final else None,
        "max_error_ms": round((final["max_s"] - hold) * 1000, 2) if "max_s" in final else None,
        "min_error_ms": round((final["min_s"] - hold) * 1000, 2) if "min_s" in final else None,
        "client_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "client_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "warnings": doc.get("warnings"),
    }
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", default="pap:1000,pap:10000,peap-mschapv2:1000")
    ap.add_argument("--hold", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--pace", type=float, default=2000.0, help="load --pace (new authentications a second)")
    ap.add_argument("--time-limit", type=float, default=300.0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "load.json"))
    opts = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="radius-probe-bench-load-") as tmp:
        work = Path(tmp)
        pki = work / "pki"
        subprocess.run([*CLI, "certs", "init", str(pki)], check=True, capture_output=True, env=env())
        for spec in opts.rows.split(","):
            method, n = spec.split(":")
            # a baseline of 10 conversations, for the memory per conversation
            base = run_row(work, pki, method, 10, min(opts.hold, 2.0), opts.workers, opts.time_limit)
            row = run_row(work, pki, method, int(n), opts.hold, opts.workers, opts.time_limit, opts.pace)
            row["baseline_rss_mib"] = base["client_rss_mib"]
            row["kib_per_conversation"] = round((row["client_rss_mib"] - base["client_rss_mib"]) * 1024
                                                / (int(n) - 10), 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(), "rows": rows},
                                         indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
