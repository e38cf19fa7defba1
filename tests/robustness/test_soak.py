"""An accelerated soak: `serve` against the emulator, both as subprocesses, memory sampled from /proc.

Bound: at most ~90 s (marked slow).  The emulator and ``radius-probe serve`` run as
subprocesses on 127.0.0.1; serve's probe file has 8 PAP and 2 PEAP-MSCHAPv2 checks at a
very short interval.  The emulator's ages are shortened (fast-reconnect grants live 2 s,
duplicates 1 s, 1,000 events kept) so that its caches reach their steady state within
the warm-up, as they do within minutes at their defaults.  After a warm-up, VmRSS of both processes is sampled against the
number of checks done (radius_probe_checks_total from /metrics); the least-squares slope
of RSS per 10,000 checks must stay under 1 MB for each.  A leak of a few hundred bytes per
check (a cache without a cap, an event list, an attempt history) shows up here.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from probe.pki import Pki
from tests.servers.serve import LAB_PASSWORD, LAB_SECRET, start_emulator, start_serve, stop

from .conftest import vm_rss_kb

WARMUP_S = 15.0
MEASURE_S = 50.0
SAMPLE_EVERY_S = 1.0
LIMIT_MB_PER_10K = 1.0
PAP_CHECKS = 8
PEAP_CHECKS = 2
INTERVAL_S = 0.05


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    assert var > 0, "no checks were done while measuring"
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var


def checks_done(served: Any) -> float:
    total = 0.0
    for (name, _labels), value in served.samples().items():
        if name == "radius_probe_checks_total":
            total += value
    return total


def write_files(directory: Path, lab_pki: Pki, port: int) -> tuple[Path, Path]:
    emulator = directory / "emulator.yaml"
    emulator.write_text(textwrap.dedent(f"""\
        default_users: true
        duplicate_hold: 1
        eap:
          pki: {lab_pki.directory}
          fast_reconnect_lifetime: 2
        limits:
          events_history: 1000
        """))
    secret = directory / "secret.txt"
    secret.write_text(LAB_SECRET + "\n")
    password = directory / "password.txt"
    password.write_text(LAB_PASSWORD + "\n")
    checks = [f"  - {{name: pap-{i}, target: lab, module: pap, interval: {INTERVAL_S}}}" for i in range(PAP_CHECKS)]
    checks += [f"  - {{name: peap-{i}, target: lab, module: peap, interval: {INTERVAL_S}}}" for i in range(PEAP_CHECKS)]
    probe = directory / "soak.yaml"
    probe.write_text(textwrap.dedent(f"""\
        modules:
          pap: {{method: pap, identity: alice, password_file: {password}, timeout: 2, retries: 1, late_wait: 2}}
          peap: {{method: peap-mschapv2, identity: alice, password_file: {password}, ca: {lab_pki.ca},
                  server_name: nps.lab.test, timeout: 2, retries: 1, late_wait: 2}}
        targets:
          lab: {{address: "127.0.0.1:{port}", secret_file: {secret}}}
        checks:
        """) + "\n".join(checks) + "\n")
    return emulator, probe


@pytest.mark.slow
def test_soak_rss_slope(tmp_path: Path, lab_pki: Pki, robust: Any) -> None:
    emulator_cfg, _ = write_files(tmp_path, lab_pki, 0)
    emulator, port = start_emulator(emulator_cfg, tmp_path / "emulator.log")
    served = None
    try:
        _, probe = write_files(tmp_path, lab_pki, port)
        served = start_serve(tmp_path, [probe], "--concurrency", "10")
        pids = {"serve": served.proc.pid, "emulator": emulator.pid}
        time.sleep(WARMUP_S)
        xs: list[float] = []
        rss: dict[str, list[float]] = {k: [] for k in pids}
        end = time.monotonic() + MEASURE_S
        while time.monotonic() < end:
            assert served.proc.poll() is None and emulator.poll() is None, "a process died during the soak"
            done = checks_done(served)
            for name, pid in pids.items():
                kb = vm_rss_kb(pid)
                assert kb is not None
                rss[name].append(kb * 1024.0)
            xs.append(done)
            time.sleep(SAMPLE_EVERY_S)
        measured = xs[-1] - xs[0]
        slopes = {name: slope(xs, ys) * 10_000 / 2**20 for name, ys in rss.items()}  # MB per 10,000 checks
        failed = {k: v for (k, _), v in served.samples().items() if k == "radius_probe_checks_total"}
        robust("soak", f"{PAP_CHECKS}pap+{PEAP_CHECKS}peap", f"{int(measured)} checks measured",
               serve_rss_kb=int(max(rss["serve"]) / 1024), emulator_rss_kb=int(max(rss["emulator"]) / 1024),
               note=f"{measured / MEASURE_S:.0f} checks/s; slope MB/10k checks: serve {slopes['serve']:+.3f}, "
                    f"emulator {slopes['emulator']:+.3f}")
        assert measured > 1000, f"only {measured} checks in {MEASURE_S} s: the soak says nothing"
        assert failed, "no checks_total metric"
        for name, value in slopes.items():
            assert value < LIMIT_MB_PER_10K, f"{name}: RSS grows {value:.3f} MB per 10,000 checks"
    finally:
        if served is not None:
            stop(served.proc)
        stop(emulator)
