"""The load tests' emulator: a `radius-probe emulator` process with users probe-0 .. probe-N-1 whose push is
approved after a planted delay, so measured times can be held against a known answer time."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helpers import CLI, clean_env, free_udp_port

LAB_SECRET = "radius-probe-lab"
PLANTED_DELAY_S = 0.2
LOAD_USERS = 300


@dataclass
class LoadEmulator:
    port: int
    secret_file: Path
    proc: "subprocess.Popen[str]"
    metrics_port: int | None = None


def write_config(directory: Path, users: int = LOAD_USERS, delay_s: float = PLANTED_DELAY_S) -> Path:
    doc = {"users": {f"probe-{n}": {"password": "Passw0rd!", "mfa": "approve", "delay": delay_s}
                     for n in range(users)}, "default_users": True}
    path = directory / "emulator.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def start_emulator(directory: Path, *extra: str, duration_s: float = 240) -> LoadEmulator:
    secret_file = directory / "secret"
    secret_file.write_text(LAB_SECRET + "\n")
    port = free_udp_port()
    args = [*CLI, "emulator", "--listen", f"127.0.0.1:{port}", "--config", str(write_config(directory)),
            "--duration", str(duration_s), *extra]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert f"listening on 127.0.0.1:{port}" in first, first + (proc.stderr.read() if proc.poll() is not None else "")
    return LoadEmulator(port, secret_file, proc)


@pytest.fixture(scope="module")
def load_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadEmulator]:
    em = start_emulator(tmp_path_factory.mktemp("load-emulator"))
    try:
        yield em
    finally:
        em.proc.terminate()
        em.proc.wait(timeout=10)
