"""A bare ``/health`` on ``serve`` (issue 13): one fixed path for a load balancer or monitor that can call
only one. 200 when every check is healthy, else 503; the body starts with OK or DOWN and lists the
unhealthy checks; GET and HEAD; ``/health?target=T`` for one backend (by name or address)."""

from __future__ import annotations

import textwrap
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import free_udp_port, wait_until
from tests.servers.serve import (EMULATOR_USERS, Served, start_emulator, start_serve, stop, write_secrets)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, int]]:
    d = tmp_path_factory.mktemp("health")
    secrets = write_secrets(d)
    config = d / "emulator.yaml"
    config.write_text(EMULATOR_USERS % "approve")
    em, port = start_emulator(config, d / "emulator.log")
    dead = free_udp_port()  # nothing listens: port unreachable
    probe = d / "probe.yaml"
    probe.write_text(textwrap.dedent(f"""\
        x-pap: &pap {{method: pap, password_file: {secrets['password']}, timeout: 5, retries: 0, late_wait: 5}}
        modules:
          alice: {{<<: *pap, identity: alice}}
          grace: {{<<: *pap, identity: grace}}
        targets:
          nps1: {{address: "127.0.0.1:{port}", secret_file: {secrets['secret']}}}
          nps2: {{address: "127.0.0.1:{dead}", secret_file: {secrets['secret']}}}
        checks:
          - {{name: push, targets: "*", module: alice, interval: 2, expect: {{message_authenticator: optional}}}}
          - {{name: no-mfa, target: nps1, module: grace, interval: 2, expect: {{message_authenticator: optional}}}}
        """))
    s = start_serve(d, [probe])
    try:
        yield s, port
    finally:
        assert stop(s.proc) == 0
        stop(em)


def head(s: Served, path: str) -> tuple[int, bytes]:
    request = urllib.request.Request(s.url(path), method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_bare_health_aggregates_every_check(served: tuple[Served, int]) -> None:
    s, port = served
    wait_until(lambda: s.get("/health?target=nps1")[0] == 200, "both checks of nps1 to be healthy")
    wait_until(lambda: "FAILED push@nps2" in s.get("/health?target=nps2")[1], "the first run on nps2 (start jitter)")
    status, body = s.get("/health")
    assert status == 503, body
    lines = body.splitlines()
    assert lines[0] == "DOWN every check: 1 of 3 check(s) unhealthy"
    assert len(lines) == 2 and lines[1].startswith("FAILED push@nps2: ")  # only the unhealthy one is listed
    assert head(s, "/health") == (503, b"")

    status, body = s.get("/health?target=nps1")
    assert (status, body) == (200, "OK target nps1: 2 of 2 check(s) healthy\n")
    assert s.get(f"/health?target=127.0.0.1:{port}")[0] == 200  # a backend by its address too
    assert head(s, "/health?target=nps1") == (200, b"")
    status, body = s.get("/health?target=nps2")
    assert status == 503 and body.startswith("DOWN target nps2: 1 of 1 check(s) unhealthy\nFAILED push@nps2")


def test_unknown_target_is_404_with_a_suggestion(served: tuple[Served, int]) -> None:
    s, _ = served
    status, body = s.get("/health?target=nps3x")
    assert status == 404 and body.startswith("UNKNOWN target 'nps3x'") and "(nps1, nps2)" in body
    status, body = s.get("/health?target=npss1")
    assert status == 404 and body.strip().endswith("did you mean 'nps1'?")
