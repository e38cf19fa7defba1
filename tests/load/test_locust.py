"""Locust, distributed on loopback: one --master, two --worker processes, a few hundred RadiusUsers for ~20 s
against the emulator; Locust's CSV statistics are held against what the emulator counted and planted."""

from __future__ import annotations

import csv
import importlib.util
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import clean_env, free_udp_port, wait_until
from tests.load.conftest import PLANTED_DELAY_S, start_emulator

# Never import locust here: it monkey-patches the whole process for gevent (sockets, threads, sleep).
pytestmark = pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="needs locust (the load extra)")

LOCUSTFILE = '''
from locust import between

from probe.load.locust import RadiusUser


class Employee(RadiusUser):
    """probe-{n}: the emulator approves their push after the planted delay."""
    weight = 9
    wait_time = between(0.5, 1.0)


class Denied(RadiusUser):
    """bob denies his push: a Reject where an Accept is expected, so Locust must count a failure."""
    weight = 1
    wait_time = between(0.5, 1.0)
    identity = "bob"
    check_name = "bob"
'''

USERS = 300
RUN_S = 20


def emulator_counts(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name.split("{")[0]] = out.get(name.split("{")[0], 0.0) + float(value)
    return out


def test_distributed_locust_counts_match_the_emulator(tmp_path: Path) -> None:
    locust = shutil.which("locust")
    command = [locust] if locust else [sys.executable, "-m", "locust"]
    metrics_port = free_udp_port()  # a free port number (TCP on loopback is free as well, near certainly)
    em = start_emulator(tmp_path, "--metrics", f"127.0.0.1:{metrics_port}", duration_s=120)
    (tmp_path / "pw").write_text("Passw0rd!\n")
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    radius = ["--radius-secret-file", str(em.secret_file), "--radius-identity", "probe-{n}", "--radius-users",
              str(USERS), "--radius-password-file", str(tmp_path / "pw"), "-H", f"127.0.0.1:{em.port}"]
    master_port = free_udp_port()
    procs: list[subprocess.Popen[str]] = []
    try:
        master = subprocess.Popen(
            [*command, "-f", str(locustfile), "--headless", "--master", "--master-bind-host", "127.0.0.1",
             "--master-bind-port", str(master_port), "--expect-workers", "2", "--expect-workers-max-wait", "30",
             "-u", str(USERS), "-r", "100", "-t", f"{RUN_S}s", "--stop-timeout", "10", "--csv",
             str(tmp_path / "run"), "--only-summary", *radius],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean_env(), cwd=tmp_path)
        procs.append(master)
        for _ in range(2):
            procs.append(subprocess.Popen(
                [*command, "-f", str(locustfile), "--worker", "--master-host", "127.0.0.1", "--master-port",
                 str(master_port), *radius],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, env=clean_env(), cwd=tmp_path))
        out, _ = master.communicate(timeout=RUN_S + 60)
        assert master.returncode == 1, out[-3000:]  # Locust exits 1 when any request failed (bob's)
        for worker in procs[1:]:
            worker.wait(timeout=20)
        rows = {row["Name"]: row for row in csv.DictReader((tmp_path / "run_stats.csv").open())}
        total = int(rows["Aggregated"]["Request Count"])
        # the emulator publishes its counters every 0.2 s: wait until they settle on their final value
        counted = wait_until(lambda: (n := emulator_counts(metrics_port)["radius_emulator_requests_received_total"])
                             >= total and n, "the emulator's count", timeout=10)
        assert total > 1000, rows
        assert abs(counted - total) <= 0.001 * total, (counted, total)
        employees, bob = rows["auth"], rows["bob"]
        assert employees["Type"] == "pap" and int(employees["Failure Count"]) == 0
        assert int(bob["Request Count"]) > 0 and bob["Failure Count"] == bob["Request Count"]
        planted_ms = PLANTED_DELAY_S * 1000
        assert float(employees["Min Response Time"]) >= planted_ms
        assert planted_ms <= float(employees["50%"]) <= planted_ms + 100, employees
        assert planted_ms <= float(employees["99%"]) <= planted_ms + 800, employees
        assert float(bob["50%"]) < planted_ms  # bob is rejected at once: no planted delay
        failures = list(csv.DictReader((tmp_path / "run_failures.csv").open()))
        assert [(f["Name"], f["Method"]) for f in failures] == [("bob", "pap")]
        assert "expected accept, got reject" in failures[0]["Error"]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
        em.proc.terminate()
        em.proc.wait(timeout=10)
