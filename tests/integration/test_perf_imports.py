"""A one-shot PAP check imports only what PAP needs (issue 14): behaviour, not time.

``radius-probe auth --method pap`` against the emulator, in a subprocess that lists the
modules it loaded: no cryptography X.509, pyOpenSSL, aiohttp, prometheus_client or YAML
(each costs tens of milliseconds of start-up, before the first datagram). ``--help``
does not even load asyncio or the conversation. An EAP-TLS check still loads the TLS
stack (the test that cannot fail is a defect: this one shows the probe does load it when needed).

The second pass (issue 14): no xml.etree (only --junit needs it), uuid (it loads platform) or difflib
(only an unknown name needs it) either.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.helpers import CLI, clean_env, free_udp_port

LAB_SECRET = "radius-probe-lab"
HEAVY = ("cryptography.x509", "OpenSSL", "aiohttp", "prometheus_client", "yaml")
CUT = ("xml", "uuid", "platform", "difflib")  # the second pass: --junit, the correlation id, did-you-mean
# Runs the CLI's main() in this interpreter, then prints the loaded module names (stdout's last line).
RUNNER = ("import json, sys\nfrom probe.cli import main\ncode = main(sys.argv[1:])\n"
          "print(json.dumps({'exit': code, 'modules': sorted(sys.modules)}))\n")


@pytest.fixture(scope="module")
def emulator_port() -> Iterator[int]:
    port = free_udp_port()
    proc = subprocess.Popen([*CLI, "emulator", "--listen", f"127.0.0.1:{port}", "--duration", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert f"listening on 127.0.0.1:{port}" in first, first + (proc.stderr.read() if proc.poll() is not None else "")
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main_report(*args: str) -> tuple[dict[str, Any], str]:
    """main(args) in a fresh interpreter: its exit code and loaded modules (the last line), and all its stdout."""
    done = subprocess.run([sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, timeout=60,
                          env=clean_env())
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    return json.loads(lines[-1]), done.stdout + done.stderr


def loaded(*args: str) -> tuple[int, set[str]]:
    report, _ = main_report(*args)
    return report["exit"], set(report["modules"])


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_a_pap_auth_loads_no_tls_http_metrics_or_yaml(emulator_port: int, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(LAB_SECRET + "\n")
    code, modules = loaded("auth", f"127.0.0.1:{emulator_port}", "--secret-file", str(secret), "--allow-unsigned",
                           "--method", "pap", "--identity", "alice", "--password", "Passw0rd!", "--json")
    assert code == 0
    assert "probe.drivers.aio" in modules  # it did authenticate
    assert heavy(modules) == []


def test_a_pap_auth_loads_no_xml_or_uuid(emulator_port: int, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(LAB_SECRET + "\n")
    report, output = main_report("auth", f"127.0.0.1:{emulator_port}", "--secret-file", str(secret),
                                 "--allow-unsigned", "--method", "pap", "--identity", "alice",
                                 "--password", "Passw0rd!", "--json")
    assert report["exit"] == 0, output
    assert '"result": "accept"' in output  # it did authenticate, with the rras profile's correlation id
    modules = set(report["modules"])
    assert sorted(m for m in modules if m.split(".")[0] in CUT) == []


def test_help_loads_neither_asyncio_nor_the_conversation() -> None:
    done = subprocess.run([sys.executable, "-c", RUNNER.replace("code = main(sys.argv[1:])",
                                                                "try:\n    code = main(sys.argv[1:])\n"
                                                                "except SystemExit as exc:\n    code = exc.code"),
                           "--help"], capture_output=True, text=True, timeout=60, env=clean_env())
    report = json.loads(done.stdout.strip().splitlines()[-1])
    modules = set(report["modules"])
    assert report["exit"] == 0 and "usage" in done.stdout
    assert not {"asyncio", "probe.conversation", "probe.drivers.aio"} & modules
    assert heavy(modules) == []


def test_an_eap_tls_auth_does_load_the_tls_stack(emulator_port: int, tmp_path: Path, lab_pki: object) -> None:
    from probe.pki import Pki

    assert isinstance(lab_pki, Pki)
    secret = tmp_path / "secret"
    secret.write_text(LAB_SECRET + "\n")
    user = lab_pki.users["alice"]
    code, modules = loaded("auth", f"127.0.0.1:{emulator_port}", "--secret-file", str(secret), "--allow-unsigned",
                           "--method", "eap-tls", "--identity", "alice", "--cert", str(user.cert),
                           "--key", str(user.key), "--ca", str(lab_pki.ca), "--json")
    assert "OpenSSL" in modules and "cryptography.x509" in modules
    assert code in (0, 1, 2)  # the emulator's default PKI is not the session's: any judged verdict will do


def test_the_lazy_error_name_is_the_real_class_once_loaded() -> None:
    from probe import lazy
    from probe.eap.tls_engine import TlsConfigError

    assert lazy.tls_config_error() is TlsConfigError
    assert lazy.loaded_error("probe.no_such_module", "TlsConfigError") is lazy.NeverRaised
    assert lazy.loaded_error("probe.lazy", "TLS_ERRORS") is lazy.NeverRaised  # not an exception class
