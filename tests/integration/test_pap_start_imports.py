"""A one-shot PAP check loads neither the XML stack, the uuid module nor difflib (issue 14, second pass).

``probe.report`` imported xml.etree.ElementTree for ``--junit`` only, and the NAS profile
imported uuid (which loads platform) to format its correlation id, and the "did you mean"
helpers imported difflib for error paths: all at the start of every ``radius-probe auth``.
Behaviour, not time: the modules a real PAP auth against the emulator loaded, listed by the
subprocess itself (tests/unit/test_junit_schema.py still writes the XML).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import CLI, clean_env, free_udp_port

LAB_SECRET = "radius-probe-lab"
CUT = ("xml", "uuid", "platform", "difflib")
RUNNER = ("import json, sys\nfrom probe.cli import main\ncode = main(sys.argv[1:])\n"
          "print(json.dumps({'exit': code, 'modules': sorted(sys.modules)}))\n")


@pytest.fixture(scope="module")
def emulator_port() -> Iterator[int]:
    port = free_udp_port()
    proc = subprocess.Popen([*CLI, "emulator", "--listen", f"127.0.0.1:{port}", "--duration", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert f"listening on 127.0.0.1:{port}" in first, first
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_pap_auth_loads_no_xml_or_uuid(emulator_port: int, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(LAB_SECRET + "\n")
    done = subprocess.run([sys.executable, "-c", RUNNER, "auth", f"127.0.0.1:{emulator_port}", "--secret-file",
                           str(secret), "--allow-unsigned", "--method", "pap", "--identity", "alice",
                           "--password", "Passw0rd!", "--json"], capture_output=True, text=True, timeout=60,
                          env=clean_env())
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["exit"] == 0, done.stdout + done.stderr
    assert '"result": "accept"' in done.stdout  # it did authenticate, with the rras profile's correlation id
    modules = set(report["modules"])
    assert sorted(m for m in modules if m.split(".")[0] in CUT) == []

