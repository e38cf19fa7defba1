"""`--source ADDR` and a target's `source:` (issue 12, item 5): the address requests leave from.

NPS knows its RADIUS clients by source address.  On Linux every 127/8 address is local, so an
emulator that knows only 127.0.0.1 plants an unknown client for a probe sending from 127.0.0.2
(NPS: System event 13).  auth and diagnose are tested in test_diagnose.py; run and serve here.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.helpers import cli, wait_until
from tests.servers.serve import start_emulator, start_serve, stop, write_secrets


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Path], int]]:
    d = tmp_path_factory.mktemp("source-lab")
    secrets = write_secrets(d)
    config = d / "emulator.yaml"
    config.write_text("clients: [127.0.0.1/32]\n")
    proc, port = start_emulator(config, d / "emulator.log")
    try:
        yield d, secrets, port
    finally:
        stop(proc)


def probe(d: Path, secrets: dict[str, Path], port: int, source_lines: tuple[str, str] = ("", "")) -> Path:
    path = d / "probe.yaml"
    path.write_text(textwrap.dedent(f"""\
        modules:
          alice: {{method: pap, identity: alice, password_file: {secrets['password']}, timeout: 0.4, retries: 0,
                   late_wait: 0.4}}
        targets:
          known:
            address: 127.0.0.1:{port}
            secret_file: {secrets['secret']}
        {source_lines[0]}
          stranger:
            address: 127.0.0.1:{port}
            secret_file: {secrets['secret']}
        {source_lines[1]}
        checks:
          - {{name: alice, targets: "*", module: alice, expect: {{message_authenticator: optional}}}}
        """))
    return path


def by_target(stdout: str) -> dict[str, dict[str, Any]]:
    return {c["target"]: c for c in json.loads(stdout)["checks"]}


def test_run_target_source_and_the_command_line_default(lab: tuple[Path, dict[str, Path], int]) -> None:
    d, secrets, port = lab
    path = probe(d, secrets, port, ("    source: 127.0.0.1", "    source: 127.0.0.2"))
    r = cli("run", str(path), "--json", "-")
    checks = by_target(r.stdout)
    assert r.returncode == 2, r.stdout + r.stderr
    assert checks["known"]["verdict"] == "OK" and checks["known"]["outcome"]["source"] == "127.0.0.1"
    stranger = checks["stranger"]["outcome"]
    assert checks["stranger"]["verdict"] == "FAILED" and stranger["result"] == "discard"
    assert stranger["source"] == "127.0.0.2" and "sent from 127.0.0.2" in stranger["diagnosis"][0]["text"]

    plain = probe(d, secrets, port)  # no source: in the file: --source is the default for both targets
    r = cli("run", str(plain), "--json", "-", "--source", "127.0.0.2")
    assert r.returncode == 2
    assert {c["outcome"]["source"] for c in by_target(r.stdout).values()} == {"127.0.0.2"}
    assert {c["verdict"] for c in by_target(r.stdout).values()} == {"FAILED"}
    mixed = probe(d, secrets, port, ("    source: 127.0.0.1", ""))  # a target's own source: wins over --source
    r = cli("run", str(mixed), "--json", "-", "--source", "127.0.0.2")
    checks = by_target(r.stdout)
    assert checks["known"]["verdict"] == "OK" and checks["stranger"]["outcome"]["source"] == "127.0.0.2"


@pytest.mark.parametrize(("line", "words"), [
    ("    source: not-an-address", "is not an IP address"),
    ("    source: '::1'", "is IPv6 but the target 127.0.0.1 is IPv4"),
])
def test_a_bad_source_is_a_one_line_error_naming_file_and_field(lab: tuple[Path, dict[str, Path], int],
                                                               line: str, words: str) -> None:
    d, secrets, port = lab
    path = probe(d, secrets, port, ("", line))
    r = cli("run", str(path))
    assert r.returncode == 3 and r.stdout == ""
    assert f"{path}:" in r.stderr and "targets.stranger.source" in r.stderr and words in r.stderr, r.stderr
    r = cli("auth", f"127.0.0.1:{port}", "--secret", "x", "--identity", "a", "--password", "p", "--source", "nope")
    assert r.returncode == 3 and "--source 'nope' is not an IP address" in r.stderr


def test_serve_source(lab: tuple[Path, dict[str, Path], int]) -> None:
    """serve --source 127.0.0.2: the scheduled checks leave from it (unknown client: discard)."""
    d, secrets, port = lab
    path = probe(d, secrets, port, ("", "    source: 127.0.0.1"))
    served = start_serve(d, [path], "--source", "127.0.0.2")
    try:
        def counted(target: str, result: str) -> bool:
            return (served.value("radius_probe_checks_total", check="alice", target=target, module="alice",
                                 result=result) or 0) >= 1

        wait_until(lambda: counted("known", "discard") and counted("stranger", "accept"),
                   "known (sent from 127.0.0.2) discarded, stranger (its own source: 127.0.0.1) accepted")
    finally:
        stop(served.proc)


def test_blocking_driver_binds_the_source_too() -> None:
    """The blocking driver (Locust's) sends from cfg.source as the asyncio pool does."""
    import asyncio
    import ipaddress

    from probe.drivers.blocking import authenticate_blocking
    from probe.emulator.config import default_config
    from tests.helpers import emulator, pap, run

    async def go() -> tuple[str | None, str, str | None, str]:
        config = default_config()
        config.clients = [ipaddress.ip_network("127.0.0.1/32")]
        async with emulator(config) as em:
            outs = []
            for source in ("127.0.0.2", "127.0.0.1"):
                cfg = pap(em.address, "alice")
                cfg.source = source
                outs.append(await asyncio.to_thread(authenticate_blocking, cfg))
            return outs[0].source, outs[0].result, outs[1].source, outs[1].result

    assert run(go()) == ("127.0.0.2", "discard", "127.0.0.1", "accept")


def test_diagnose_a_name_that_does_not_resolve() -> None:
    r = cli("diagnose", "no-such-host.invalid", "--secret", "x", "--json")
    assert r.returncode == 3, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["cause"]["code"] == "name_not_resolved" and doc["steps"] == []
