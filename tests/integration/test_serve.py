"""`radius-probe serve` end to end, and `run --textfile / --push`.

The emulator runs as `radius-probe emulator` in its own process and `radius-probe
serve` in another (both on 127.0.0.1); the tests speak HTTP to serve, send it
signals by its PID, and read its JSON-lines log.  A raw UDP socket stands in for
a host the probe must NOT reach: it has to receive nothing.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from probe.checks import RunOptions
from probe.config import load_probe_files
from probe.emulator.config import EmulatedUser, default_config
from probe.scheduler import Scheduler
from tests.helpers import CLI, clean_env, emulator, wait_until
from tests.servers.serve import (EMULATOR_USERS, LAB_CHECKS, LAB_PASSWORD, LAB_SECRET, PATTERN_SECRET, Served,
                                 parse, probe_file, start_emulator, start_serve, stop, write_secrets)


def wait_status(served: "Served", path: str, status: int, contains: str = "") -> str:
    """The body of ``path`` once it answers ``status`` with ``contains`` in the body (bounded)."""
    def answered() -> str | None:
        got, body = served.get(path)
        return body if got == status and contains in body else None

    return wait_until(answered, f"{path} to answer {status} {contains}")


@dataclass
class Lab:
    directory: Path
    secrets: dict[str, Path]
    emulator_port: int
    probe: Path
    allowed: socket.socket  # a UDP listener /probe may reach (--allow-target)
    refused: socket.socket  # a UDP listener /probe must never reach


def udp_listener() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    d = tmp_path_factory.mktemp("serve-lab")
    secrets = write_secrets(d)
    config = d / "emulator.yaml"
    config.write_text(EMULATOR_USERS % "approve")
    proc, port = start_emulator(config, d / "emulator.log")
    allowed, refused = udp_listener(), udp_listener()
    try:
        yield Lab(d, secrets, port, probe_file(d / "probe.yaml", port, secrets, LAB_CHECKS), allowed, refused)
    finally:
        allowed.close()
        refused.close()
        stop(proc)


@pytest.fixture(scope="module")
def served(lab: Lab) -> Iterator[Served]:
    allowed_port = lab.allowed.getsockname()[1]
    s = start_serve(lab.directory, [lab.probe], "--allow-target", f"127.0.0.1:{allowed_port}",
                    "--secret-file", str(lab.secrets["pattern"]), "--concurrency", "4")
    try:
        wait_until(lambda: (s.value("radius_probe_checks_total", check="alice", target="lab", module="alice",
                                    result="accept") or 0) >= 1
                   and (s.value("radius_probe_checks_total", check="carol", target="lab", module="carol",
                                result="discard") or 0) >= 1, "first results of alice and carol")
        yield s
    finally:
        assert stop(s.proc) == 0


# ---------------------------------------------------------------------------
# /metrics, /health, /-/*


def test_metrics_carry_the_scheduled_checks(served: Served) -> None:
    got = served.samples()
    alice = (("check", "alice"), ("module", "alice"), ("target", "lab"))
    carol = (("check", "carol"), ("module", "carol"), ("target", "lab"))
    bob = (("check", "bob-accept"), ("module", "bob"), ("target", "lab"))
    assert got[("radius_probe_checks_total", tuple(sorted(alice + (("result", "accept"),))))] >= 1
    assert got[("radius_probe_checks_total", tuple(sorted(carol + (("result", "discard"),))))] >= 1
    assert got[("radius_probe_response_seconds_count", alice)] >= 1
    assert got[("radius_probe_response_seconds_bucket", tuple(sorted(alice + (("le", "0.5"),))))] >= 1
    assert 59 < got[("radius_probe_mfa_window_margin_seconds", alice)] <= 60
    assert got[("radius_probe_message_authenticator_present", alice)] == 0  # PAP replies unsigned, as NPS
    assert got[("radius_probe_expectation_met", alice)] == 1
    assert got[("radius_probe_check_verdict", alice)] == 0
    assert got[("radius_probe_round_trips", alice)] == 1
    assert got[("radius_probe_last_check_timestamp_seconds", alice)] > 1.7e9
    assert got[("radius_probe_retransmissions_total", carol)] >= 1
    assert got[("radius_probe_expectation_met", carol)] == 1
    assert got[("radius_probe_check_interval_seconds", carol)] == 1
    wait_until(lambda: served.value("radius_probe_check_verdict", **dict(bob)) == 2, "bob-accept to fail")
    assert got[("radius_probe_config_reload_success", ())] == 1
    assert got[("radius_probe_checks_configured", ())] == 3
    assert ("process_cpu_seconds_total", ()) in got  # the process metrics of prometheus-client
    body = served.get("/metrics")[1]
    assert LAB_SECRET not in body and LAB_PASSWORD not in body and PATTERN_SECRET not in body


def test_health_ready_and_per_check_health(served: Served) -> None:
    assert served.get("/-/healthy") == (200, "OK radius-probe is running\n")
    status, body = served.get("/-/ready")
    assert status == 200 and body.startswith("READY: 3 check(s)")
    body = wait_status(served, "/health/alice", 200)
    assert body.startswith("OK alice@lab: accept in ")
    status, body = served.get("/health/carol/lab")
    assert status == 200 and body.startswith("OK carol@lab: discard")  # a discard was expected
    body = wait_status(served, "/health/bob-accept", 503)
    assert body.startswith("FAILED bob-accept@lab: expected accept, got reject")
    assert served.get("/health/nosuch")[0] == 404
    assert served.get("/health/alice/elsewhere")[0] == 404


# ---------------------------------------------------------------------------
# /probe


def test_probe_named_target_and_address(served: Served, lab: Lab) -> None:
    status, body = served.get("/probe?target=lab&module=alice")
    assert status == 200
    got = parse(body)
    assert got[("probe_success", ())] == 1
    assert got[("probe_radius_result", (("result", "accept"),))] == 1
    assert got[("probe_radius_round_trips", ())] == 1
    assert 0 <= got[("probe_radius_final_response_seconds", ())] <= got[("probe_duration_seconds", ())]
    assert not any(name.startswith("radius_probe_") for name, _ in got)  # a fresh registry per request
    status, body = served.get(f"/probe?target=127.0.0.1:{lab.emulator_port}&module=carol")
    got = parse(body)
    assert status == 200 and got[("probe_success", ())] == 1  # the carol check expects the discard
    assert got[("probe_radius_result", (("result", "discard"),))] == 1
    status, body = served.get("/probe?target=lab&module=bob")
    assert parse(body)[("probe_success", ())] == 0  # no check of bob on lab: the expectation is accept


def test_probe_debug_returns_the_probe_log(served: Served) -> None:
    status, body = served.get("/probe?target=lab&module=alice&debug=true")
    assert status == 200
    assert body.startswith("Probe of target lab (127.0.0.1:")
    assert "Result        ACCEPT" in body
    start = body.index("Outcome (JSON, schema 1):\n") + len("Outcome (JSON, schema 1):\n")
    end = body.index("\n\nMetrics that would have been returned:")
    outcome = json.loads(body[start:end])
    assert outcome["result"] == "accept" and outcome["identity"] == "alice"
    assert "probe_success 1.0" in body
    assert LAB_SECRET not in body and LAB_PASSWORD not in body


def test_probe_refuses_and_sends_nothing(served: Served, lab: Lab) -> None:
    refused_port = lab.refused.getsockname()[1]
    cases = {
        f"/probe?target=127.0.0.1:{refused_port}&module=alice":
            "matches no --allow-target pattern: nothing was sent",
        f"/probe?target=127.0.0.1:{refused_port}&module=nosuch": "unknown module 'nosuch'",
        "/probe?target=lab&module=nosuch": "unknown module 'nosuch' (modules: alice, bob, carol)",
        "/probe?module=alice": "both target= and module= are required",
        "/probe?target=lab&module=alice&timeout=soon": "timeout 'soon' is not a number of seconds",
        "/probe?target=lab&module=alice&timeout=-1": "timeout '-1' must be > 0",
    }
    before = served.value("radius_probe_probe_requests_total", outcome="refused") or 0
    for path, reason in cases.items():
        status, body = served.get(path)
        assert status == 400 and reason in body, (path, body)
    assert served.value("radius_probe_probe_requests_total", outcome="refused") == before + len(cases)
    lab.refused.settimeout(1.0)
    with pytest.raises(socket.timeout):
        lab.refused.recvfrom(4096)  # not one datagram reached the refused host


def test_probe_reaches_an_allowed_pattern_with_its_secret(served: Served, lab: Lab) -> None:
    allowed_port = lab.allowed.getsockname()[1]
    status, body = served.get(f"/probe?target=127.0.0.1:{allowed_port}&module=alice&timeout=1")
    assert status == 200, body
    got = parse(body)
    assert got[("probe_success", ())] == 0
    assert got[("probe_radius_result", (("result", "discard"),))] == 1
    lab.allowed.settimeout(5.0)
    data, _ = lab.allowed.recvfrom(4096)
    assert data[0] == 1  # an Access-Request
    assert b"alice" in data and LAB_PASSWORD.encode() not in data


def test_scrape_timeout_header_shortens_the_probe(served: Served) -> None:
    # carol's module waits 0.5 s x 2 transmissions; a 1.2 s scrape timeout less 0.5 s leaves 0.7 s
    status, body = served.get("/probe?target=lab&module=carol&debug=1",
                              headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.2"})
    assert status == 200
    start = body.index("Outcome (JSON, schema 1):\n") + len("Outcome (JSON, schema 1):\n")
    outcome = json.loads(body[start:body.index("\n\nMetrics that would have been returned:")])
    assert outcome["result"] == "discard"
    assert outcome["client_timeout_s"] == pytest.approx(0.7)


def test_logs_are_json_lines_without_secrets(served: Served) -> None:
    assert served.get("/probe?target=192.0.2.1:1812&module=alice")[0] == 400
    text = served.log.read_text()
    events = served.events()  # every line parses
    kinds = {e.get("event") for e in events}
    assert {"config_loaded", "listening", "check_done", "probe_refused"} <= kinds
    done = [e for e in events if e.get("event") == "check_done" and e["check"] == "carol"]
    assert done and done[0]["result"] == "discard" and done[0]["diagnosis"] == ["no_reply"]
    assert LAB_SECRET not in text and LAB_PASSWORD not in text and PATTERN_SECRET not in text


# ---------------------------------------------------------------------------
# Reload, shutdown, health flipping


def test_reload_with_a_broken_file_keeps_the_old_config(tmp_path: Path, lab: Lab) -> None:
    probe = probe_file(tmp_path / "probe.yaml", lab.emulator_port, lab.secrets, """\
        - {name: alice, target: lab, module: alice, interval: 1, expect: {message_authenticator: optional}}
        - name: bob-reject
          target: lab
          module: bob
          interval: 1
          expect: {result: reject, message_authenticator: optional}
        """)
    s = start_serve(tmp_path, [probe])
    alice = {"check": "alice", "target": "lab", "module": "alice", "result": "accept"}
    try:
        wait_until(lambda: (s.value("radius_probe_checks_total", **alice) or 0) >= 1, "alice's first result")
        good = probe.read_text()
        probe.write_text(good.replace("module: bob\n", "module: bobby\n"))
        s.signal(signal.SIGHUP)
        wait_until(lambda: any(e.get("event") == "config_reload_failed" for e in s.events()), "the refused reload")
        errors = [e for e in s.events() if e.get("event") == "config_error"]
        assert errors and "undefined module 'bobby'" in errors[0]["issue"] and f"{probe}:" in errors[0]["issue"]
        assert s.value("radius_probe_config_reload_success") == 0
        count = s.value("radius_probe_checks_total", **alice) or 0
        wait_until(lambda: (s.value("radius_probe_checks_total", **alice) or 0) > count, "alice to keep running")
        assert s.value("radius_probe_checks_configured") == 2
        wait_until(lambda: (s.value("radius_probe_checks_total", check="bob-reject", target="lab", module="bob",
                                    result="reject") or 0) >= 1, "bob-reject's first result")
        assert s.get("/health/bob-reject")[0] == 200 and s.get("/-/ready")[0] == 200  # the reject it expects

        probe.write_text(good.replace("name: bob-reject", "name: grace").replace("module: bob\n", "module: grace\n")
                         .replace("result: reject, ", ""))
        s.signal(signal.SIGHUP)
        wait_until(lambda: s.value("radius_probe_config_reload_success") == 1, "the accepted reload")
        wait_until(lambda: (s.value("radius_probe_checks_total", check="grace", target="lab", module="grace",
                                    result="accept") or 0) >= 1, "the new check's first result")
        assert not any(dict(labels).get("check") == "bob-reject" for _, labels in s.samples())
        assert s.get("/health/bob-reject")[0] == 404
        assert (s.value("radius_probe_checks_total", **alice) or 0) > count  # alice was never restarted from 0
    finally:
        code = stop(s.proc)
    assert code == 0
    kinds = [e.get("event") for e in s.events()]
    assert kinds.index("stopping") < kinds.index("stopped")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", s.port), timeout=2).close()


def test_health_flips_to_503_when_the_server_starts_discarding(tmp_path: Path) -> None:
    secrets = write_secrets(tmp_path)
    config = tmp_path / "emulator.yaml"
    config.write_text(EMULATOR_USERS % "approve")
    em, port = start_emulator(config, tmp_path / "emulator-1.log")
    probe = probe_file(tmp_path / "probe.yaml", port, secrets, """\
        - {name: flip, target: lab, module: flip, interval: 0.5, expect: {message_authenticator: optional}}
        """)
    s = start_serve(tmp_path, [probe])
    try:
        body = wait_status(s, "/health/flip", 200)
        assert body.startswith("OK flip@lab: accept")
        stop(em)
        config.write_text(EMULATOR_USERS % "discard")  # ESTS_TOKEN_ERROR from now on
        em, _ = start_emulator(config, tmp_path / "emulator-2.log", port)
        # while the emulator restarts the check may see ICMP port unreachable (503 too); then discards
        body = wait_status(s, "/health/flip", 503, "got discard")
        assert body.startswith("FAILED flip@lab: expected accept, got discard")
        assert s.value("radius_probe_expectation_met", check="flip", target="lab", module="flip") == 0
    finally:
        assert stop(s.proc) == 0
        stop(em)


def test_serve_refuses_bad_input_and_starts_nothing(tmp_path: Path, lab: Lab) -> None:
    probe = probe_file(tmp_path / "probe.yaml", lab.emulator_port, lab.secrets, """\
        - {name: x, target: lab, module: alcie}
        """)
    done = subprocess.run([*CLI, "serve", str(probe), "--listen", "127.0.0.1:0"], capture_output=True, text=True,
                          timeout=60, env=clean_env())
    assert done.returncode == 3
    assert f"{probe}:" in done.stderr and "undefined module 'alcie'" in done.stderr
    done = subprocess.run([*CLI, "serve", str(lab.probe), "--listen", "127.0.0.1:0", "--allow-target", "10.*"],
                          capture_output=True, text=True, timeout=60, env=clean_env())
    assert done.returncode == 3 and "--allow-target needs --secret-file" in done.stderr


# ---------------------------------------------------------------------------
# The scheduler itself (in-process, against the in-process emulator)


class CountingScheduler(Scheduler):
    """The real scheduler, counting how many runs of each check are under way at once."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.now: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.peak_total = 0  # most runs of any checks under way at once, counted as each run starts

    async def execute(self, check: Any) -> Any:
        self.now[check.name] = self.now.get(check.name, 0) + 1
        self.peak[check.name] = max(self.peak.get(check.name, 0), self.now[check.name])
        self.peak_total = max(self.peak_total, sum(self.now.values()))
        try:
            return await super().execute(check)
        finally:
            self.now[check.name] -= 1


def test_scheduler_never_overlaps_a_check_and_bounds_concurrency(tmp_path: Path) -> None:
    secrets = write_secrets(tmp_path)

    async def scenario() -> None:
        config = default_config()
        config.users["sloth"] = EmulatedUser("sloth", LAB_PASSWORD, "approve", 0.3)  # slower than its interval
        async with emulator(config) as em:
            sloths = "".join(f"- {{name: s{i}, target: lab, module: sloth, interval: 0.05}}\n" for i in range(4))
            path = probe_file(tmp_path / "probe.yaml", em.address[1], secrets,
                              sloths + "- {name: held, target: lab, module: slow, interval: 60}\n",
                              modules="""\
                                  sloth: {<<: *pap, identity: sloth, timeout: 5}
                                  slow: {<<: *pap, identity: slow, timeout: 100, retries: 0}
                                  """)
            results: list[str] = []
            scheduler = CountingScheduler(RunOptions(concurrency=3), lambda r, _: results.append(r.check.name),
                                          max_jitter_s=0.0)
            scheduler.apply(load_probe_files([str(path)]))
            for _ in range(3000):  # bounded (30 s): until every sloth has run at least twice
                await asyncio.sleep(0.01)
                if all(results.count(f"s{i}") >= 2 for i in range(4)):
                    break
            assert scheduler.states[("held", "lab")].running  # the user "slow" holds 65 s: still in flight
            cancelled = await scheduler.stop(grace_s=5.0)  # sloths finish in 0.3 s; the 65 s hold cannot
        # The global bound holds; the held check occupies one slot from the start, so every sloth run
        # overlapped it.
        assert scheduler.peak_total == 3
        assert max(scheduler.peak.values()) == 1  # no check ever overlapped itself
        assert cancelled == 1  # the held check could not finish within the grace: cancelled
        for i in range(4):
            assert results.count(f"s{i}") >= 2  # rescheduled after each run
        assert "held" not in results

    asyncio.run(scenario())


# ---------------------------------------------------------------------------
# One-shot outputs: node_exporter textfile, Pushgateway


def test_run_textfile_writes_the_series_atomically(tmp_path: Path, lab: Lab) -> None:
    out_dir = tmp_path / "textfile"
    out_dir.mkdir()
    out = out_dir / "radius_probe.prom"
    done = subprocess.run([*CLI, "run", str(lab.probe), "--textfile", str(out)], capture_output=True, text=True,
                          timeout=120, env=clean_env())
    assert done.returncode == 2, done.stderr  # bob-accept fails
    assert sorted(p.name for p in out_dir.iterdir()) == ["radius_probe.prom"]  # no temporary file left
    got = parse(out.read_text())
    alice = (("check", "alice"), ("module", "alice"), ("target", "lab"))
    assert got[("radius_probe_checks_total", tuple(sorted(alice + (("result", "accept"),))))] == 1
    assert got[("radius_probe_check_verdict", (("check", "bob-accept"), ("module", "bob"), ("target", "lab")))] == 2
    assert got[("radius_probe_last_check_timestamp_seconds", alice)] > 1.7e9
    assert not any(name.startswith("process_") for name, _ in got)
    missing = subprocess.run([*CLI, "run", str(lab.probe), "--textfile", str(tmp_path / "no" / "x.prom")],
                             capture_output=True, text=True, timeout=60, env=clean_env())
    assert missing.returncode == 3 and "--textfile" in missing.stderr


class _Gateway(http.server.BaseHTTPRequestHandler):
    """A tiny Pushgateway stand-in: records each request and answers 200."""

    seen: list[tuple[str, str, bytes]] = []

    def do_PUT(self) -> None:  # http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).seen.append(("PUT", self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


def test_run_push_sends_to_a_pushgateway(tmp_path: Path, lab: Lab) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        done = subprocess.run([*CLI, "run", str(lab.probe), "--push", url, "--push-job", "vpn-radius"],
                              capture_output=True, text=True, timeout=120, env=clean_env())
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 2, done.stderr
    assert len(_Gateway.seen) == 1
    method, path, body = _Gateway.seen[0]
    assert (method, path) == ("PUT", "/metrics/job/vpn-radius")
    got = parse(body.decode())
    assert got[("radius_probe_checks_total", (("check", "carol"), ("module", "carol"), ("result", "discard"),
                                              ("target", "lab")))] == 1
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    failed = subprocess.run([*CLI, "run", str(lab.probe), "--push", f"http://user:hunter2@127.0.0.1:{port}"],
                            capture_output=True, text=True, timeout=120, env=clean_env())
    assert failed.returncode == 3
    assert "cannot push" in failed.stderr and "hunter2" not in failed.stderr
