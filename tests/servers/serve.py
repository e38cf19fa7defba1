"""`radius-probe serve` and `radius-probe emulator` as subprocesses on 127.0.0.1, and probe files for them.

Shared by tests/integration/test_serve.py and test_prometheus.py. Every wait is bounded;
processes are stopped by their own PIDs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import CLI, clean_env, free_udp_port, wait_until

LAB_SECRET = "radius-probe-lab"
LAB_PASSWORD = "Passw0rd!"
PATTERN_SECRET = "pattern-secret-never-shown"


def start_emulator(config: Path, log: Path, port: int | None = None) -> tuple[subprocess.Popen[str], int]:
    port = port or free_udp_port()
    proc = subprocess.Popen([*CLI, "emulator", "--listen", f"127.0.0.1:{port}", "--config", str(config),
                             "--duration", "900"], stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
                            env=clean_env())
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if f"listening on 127.0.0.1:{port}" not in first:
        proc.kill()
        raise RuntimeError(first + log.read_text())
    return proc, port


def stop(proc: subprocess.Popen[Any]) -> int:
    """SIGTERM to the process we started (by its PID), then its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        raise


@dataclass
class Served:
    """A running `radius-probe serve` subprocess."""

    proc: subprocess.Popen[bytes]
    log: Path
    port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        request = urllib.request.Request(self.url(path), headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def samples(self, path: str = "/metrics") -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, body = self.get(path)
        assert status == 200, body
        return parse(body)

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples().get((name, tuple(sorted(labels.items()))))

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)


def parse(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def start_serve(directory: Path, files: list[Path], *extra: str) -> Served:
    log = directory / f"serve-{len(list(directory.glob('serve-*.log')))}.log"
    proc = subprocess.Popen([*CLI, "serve", *map(str, files), "--listen", "127.0.0.1:0", *extra],
                            stdout=subprocess.DEVNULL, stderr=log.open("w"), env=clean_env())

    def listening() -> int | None:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}: {log.read_text()}")
        for line in log.read_text().splitlines():
            event = json.loads(line) if line.startswith("{") else {}
            if event.get("event") == "listening":
                return int(event["address"].rsplit(":", 1)[1])
        return None

    try:
        port = wait_until(listening, "serve to listen", timeout=30)
    except BaseException:
        proc.kill()
        proc.wait(timeout=10)
        raise
    return Served(proc, log, port)


EMULATOR_USERS = """\
default_users: true
users:
  flip: {mfa: %s}
"""


def write_secrets(directory: Path) -> dict[str, Path]:
    out = {}
    for name, value in (("secret", LAB_SECRET), ("password", LAB_PASSWORD), ("pattern", PATTERN_SECRET)):
        out[name] = directory / f"{name}.txt"
        out[name].write_text(value + "\n")
    return out


def probe_file(path: Path, port: int, secrets: dict[str, Path], checks: str, modules: str = "") -> Path:
    """A probe file for the emulator on ``port``: PAP modules for its users (plus ``modules``), ``checks``."""
    extra = textwrap.indent(textwrap.dedent(modules), "  ")
    path.write_text(textwrap.dedent(f"""\
        x-pap: &pap
          method: pap
          password_file: {secrets['password']}
          timeout: 0.5
          retries: 1
          late_wait: 1
        modules:
          alice: {{<<: *pap, identity: alice}}
          bob: {{<<: *pap, identity: bob}}
          carol: {{<<: *pap, identity: carol}}
          flip: {{<<: *pap, identity: flip}}
          grace: {{<<: *pap, identity: grace}}
        """) + extra + textwrap.dedent(f"""\
        targets:
          lab:
            address: 127.0.0.1:{port}
            secret_file: {secrets['secret']}
        checks:
        """) + textwrap.indent(textwrap.dedent(checks), "  "))
    return path


LAB_CHECKS = """\
- {name: alice, target: lab, module: alice, interval: 1, expect: {message_authenticator: optional}}
- {name: carol, target: lab, module: carol, interval: 1, expect: {result: discard}}
- {name: bob-accept, target: lab, module: bob, interval: 1, expect: {message_authenticator: optional}}
"""
