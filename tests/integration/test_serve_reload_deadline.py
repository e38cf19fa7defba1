"""``serve --deadline`` survives a reload: SIGHUP re-reads the probe files and caps them again.

A real ``radius-probe serve`` subprocess on 127.0.0.1 (tests/servers/serve.py); its target is a
loopback port nothing listens on, so every authentication ends at once (ICMP port unreachable) and
the Outcome's ``deadline_s`` (in ``/probe?debug=true``) shows the cap the running checks carry.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.helpers import free_udp_port, wait_until
from tests.servers.serve import Served, probe_file, start_serve, stop, write_secrets

CHECKS = "- {name: alice, target: lab, module: alice, interval: 3600, expect: {message_authenticator: optional}}\n"


def deadline_of(s: Served) -> float:
    status, body = s.get("/probe?target=lab&module=alice&debug=true")
    assert status == 200, body
    outcome = json.loads(body.split("Outcome (JSON, schema 1):", 1)[1].split("\n\nMetrics that would", 1)[0])
    return float(outcome["deadline_s"])


def loads(s: Served) -> int:
    return sum(e.get("event") == "config_loaded" for e in s.events())


def test_serve_deadline_caps_the_checks_of_every_reload(tmp_path: Path) -> None:
    secrets = write_secrets(tmp_path)
    probe = probe_file(tmp_path / "probe.yaml", free_udp_port(), secrets, CHECKS)  # alice waits 0.5 x 2, late 1 s
    s = start_serve(tmp_path, [probe], "--deadline", "0.3")
    try:
        assert deadline_of(s) == 0.3
        probe.write_text(probe.read_text().replace("interval: 3600", "interval: 1800"))
        s.signal(signal.SIGHUP)
        wait_until(lambda: loads(s) >= 2, "the reload")
        assert s.value("radius_probe_config_reload_success") == 1
        assert deadline_of(s) == 0.3  # before the fix: 1.0, the module's own (timeout x (retries + 1))
    finally:
        code = stop(s.proc)
    assert code == 0


def test_without_deadline_a_reload_keeps_the_modules_own(tmp_path: Path) -> None:
    secrets = write_secrets(tmp_path)
    probe = probe_file(tmp_path / "probe.yaml", free_udp_port(), secrets, CHECKS)
    s = start_serve(tmp_path, [probe])
    try:
        assert deadline_of(s) == 1.0
        s.signal(signal.SIGHUP)
        wait_until(lambda: loads(s) >= 2, "the reload")
        assert deadline_of(s) == 1.0
    finally:
        code = stop(s.proc)
    assert code == 0
