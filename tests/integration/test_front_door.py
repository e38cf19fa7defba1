"""One front door: ``auth`` and ``run`` give the same verdict and exit code for the same server.

Both commands run in-process through ``probe.cli.main`` against the built-in
emulator (in a thread with its own event loop), in each degraded state: an
expiring server certificate, unsigned replies (Blast-RADIUS), a slow answer;
and for an internal error (exit 3 in both).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest

from probe import cli
from probe.emulator.config import DEFAULT_PASSWORD, DEFAULT_SECRET, EapSettings, EmulatorConfig, default_config
from probe.emulator.server import NpsEmulator
from probe.method_pap import PapMethod
from probe.pki import Pki, init_pki
from probe.verdict import BLAST_RADIUS


@contextlib.contextmanager
def emulator_in_thread(config: EmulatorConfig) -> Iterator[int]:
    """The emulator on 127.0.0.1 in its own loop, so the CLI's asyncio.run can run beside it."""
    loop = asyncio.new_event_loop()
    em = NpsEmulator(config)
    ready: dict[str, Any] = {}
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            ready["address"] = loop.run_until_complete(em.start("127.0.0.1", 0))
        except BaseException as exc:  # surfaced to the test below
            ready["error"] = exc
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(30), "the emulator did not start"
    if "error" in ready:
        raise ready["error"]
    try:
        yield ready["address"][1]
    finally:
        asyncio.run_coroutine_threadsafe(em.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


@pytest.fixture()
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_text(DEFAULT_SECRET + "\n")
    return path


def run_auth(capsys: pytest.CaptureFixture[str], port: int, secret_file: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code = cli.main(["auth", f"127.0.0.1:{port}", "--secret-file", str(secret_file), "--json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out)


def run_probe_file(capsys: pytest.CaptureFixture[str], tmp_path: Path, port: int, secret_file: Path,
                   module: str, expect: str = "{}", *args: str) -> tuple[int, dict[str, Any]]:
    probe = tmp_path / "probe.yaml"
    probe.write_text(f"""modules:
  m:
{module}
targets:
  lab: {{address: "127.0.0.1:{port}", secret_file: {secret_file}}}
checks:
  - {{name: front-door, target: lab, module: m, expect: {expect}}}
""")
    code = cli.main(["run", str(probe), "--json", "-", "--no-progress", *args])
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_code"] == code and len(doc["checks"]) == 1
    return code, doc["checks"][0]


def same_verdict(auth: tuple[int, dict[str, Any]], run: tuple[int, dict[str, Any]]) -> None:
    """auth's exit code and Outcome against run's exit code, check entry and Outcome."""
    auth_code, auth_outcome = auth
    run_code, check = run
    run_outcome = check["outcome"]
    assert auth_code == run_code == check["exit_code"]
    assert check["verdict"] == {0: "OK", 1: "DEGRADED", 2: "FAILED", 3: "UNKNOWN"}[auth_code]
    for key in ("result", "expectation_met", "within_window", "degraded", "message_authenticator"):
        assert auth_outcome[key] == run_outcome[key], key
    assert [d["code"] for d in auth_outcome["diagnosis"]] == [d["code"] for d in run_outcome["diagnosis"]]
    assert check["degraded"] == run_outcome["degraded"]


PAP_MODULE = """    method: pap
    identity: {user}
    password_env: FRONT_DOOR_PASSWORD
    timeout: {timeout}
    retries: 0
    window: {window}
    late_wait: {timeout}"""


@pytest.fixture()
def password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRONT_DOOR_PASSWORD", DEFAULT_PASSWORD)
    monkeypatch.delenv("RADIUS_PROBE_SECRET", raising=False)
    monkeypatch.delenv("RADIUS_PROBE_PASSWORD", raising=False)


def pap_auth_args(user: str, timeout: float = 5, window: float = 60) -> list[str]:
    return ["--identity", user, "--password", DEFAULT_PASSWORD, "--timeout", str(timeout), "--retries", "0",
            "--window", str(window), "--late-wait", str(timeout)]


@pytest.mark.usefixtures("password_env")
def test_unsigned_replies(capsys: pytest.CaptureFixture[str], tmp_path: Path, secret_file: Path) -> None:
    config = default_config()
    config.sign_replies = "never"
    with emulator_in_thread(config) as port:
        auth = run_auth(capsys, port, secret_file, *pap_auth_args("alice"))
        run = run_probe_file(capsys, tmp_path, port, secret_file, PAP_MODULE.format(user="alice", timeout=5, window=60))
        same_verdict(auth, run)
        assert auth[0] == 1 and auth[1]["degraded"] == [BLAST_RADIUS]
        assert [d["code"] for d in auth[1]["diagnosis"]] == ["message_authenticator_absent"]
        allowed = run_auth(capsys, port, secret_file, "--allow-unsigned", *pap_auth_args("alice"))
        optional = run_probe_file(capsys, tmp_path, port, secret_file,
                                  PAP_MODULE.format(user="alice", timeout=5, window=60),
                                  "{message_authenticator: optional}")
        same_verdict(allowed, optional)
        assert allowed[0] == 0 and allowed[1]["degraded"] == [] and allowed[1]["message_authenticator"] == "absent"


@pytest.mark.usefixtures("password_env")
def test_slow_answer(capsys: pytest.CaptureFixture[str], tmp_path: Path, secret_file: Path) -> None:
    # The hold is a lower bound on the answer's time: 2.5 s is over 0.25 x 8 s = 2 s, with 5.5 s to spare
    # before the window closes, so the verdict does not depend on how loaded the machine is.
    config = default_config()
    config.sign_replies = "always"
    config.users["slow"].delay_s = 2.5
    with emulator_in_thread(config) as port:
        auth = run_auth(capsys, port, secret_file, "--slow-fraction", "0.25", *pap_auth_args("slow", 10, 8))
        run = run_probe_file(capsys, tmp_path, port, secret_file, PAP_MODULE.format(user="slow", timeout=10, window=8),
                             "{}", "--slow-fraction", "0.25")
    same_verdict(auth, run)
    assert auth[0] == 1 and auth[1]["result"] == "accept" and auth[1]["within_window"] is True
    assert len(auth[1]["degraded"]) == 1 and auth[1]["degraded"][0].startswith("slow answer:")
    assert [d["code"] for d in auth[1]["diagnosis"]] == ["slow_answer"]


@pytest.fixture(scope="module")
def expiring_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki") / "lab", leaf_validity=timedelta(days=5))


@pytest.mark.usefixtures("password_env")
def test_server_certificate_expiring(capsys: pytest.CaptureFixture[str], tmp_path: Path, secret_file: Path,
                                     expiring_pki: Pki) -> None:
    lab = expiring_pki
    config = default_config()
    config.eap = EapSettings.from_pki(lab.directory)
    alice = lab.users["alice"]
    module = f"""    method: peap-mschapv2
    identity: alice
    password_env: FRONT_DOOR_PASSWORD
    ca: {lab.ca}
    server_name: nps.lab.test
    timeout: 5
    retries: 0"""
    auth_args = ["--method", "peap-mschapv2", "--identity", "alice", "--password", DEFAULT_PASSWORD,
                 "--ca", str(lab.ca), "--server-name", "nps.lab.test", "--timeout", "5", "--retries", "0"]
    with emulator_in_thread(config) as port:
        auth = run_auth(capsys, port, secret_file, *auth_args)
        run = run_probe_file(capsys, tmp_path, port, secret_file, module)
        same_verdict(auth, run)
        assert auth[0] == 1 and auth[1]["result"] == "accept" and auth[1]["message_authenticator"] == "valid"
        assert [d["code"] for d in auth[1]["diagnosis"]] == ["server_certificate_expiring"]
        assert auth[1]["degraded"][0].startswith("server certificate CN=nps.lab.test expires in 4 day(s)") \
            or auth[1]["degraded"][0].startswith("server certificate CN=nps.lab.test expires in 5 day(s)")
        # --cert-warn-days means the same in both: within 3 days is not yet a degraded state
        auth = run_auth(capsys, port, secret_file, "--cert-warn-days", "3", *auth_args)
        run = run_probe_file(capsys, tmp_path, port, secret_file, module, "{}", "--cert-warn-days", "3")
        same_verdict(auth, run)
        assert auth[0] == 0
        # EAP-TLS: the client certificate of the same lab expires too
        tls_module = f"""    method: eap-tls
    identity: alice
    cert: {alice.cert}
    key: {alice.key}
    ca: {lab.ca}
    timeout: 5
    retries: 0"""
        auth = run_auth(capsys, port, secret_file, "--method", "eap-tls", "--identity", "alice", "--cert",
                        str(alice.cert), "--key", str(alice.key), "--ca", str(lab.ca), "--timeout", "5",
                        "--retries", "0")
        run = run_probe_file(capsys, tmp_path, port, secret_file, tls_module)
        same_verdict(auth, run)
        assert auth[0] == 1
        assert [d["code"] for d in auth[1]["diagnosis"]] == ["server_certificate_expiring",
                                                             "client_certificate_expiring"]


@pytest.mark.usefixtures("password_env")
def test_internal_error_is_exit_3_in_both(capsys: pytest.CaptureFixture[str], tmp_path: Path, secret_file: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: PapMethod) -> Any:
        raise RuntimeError("a bug in the method")

    monkeypatch.setattr(PapMethod, "start", broken)
    config = default_config()
    config.sign_replies = "never"  # an unsigned reply would be DEGRADED: the bug must still win
    with emulator_in_thread(config) as port:
        auth = run_auth(capsys, port, secret_file, *pap_auth_args("alice"))
        run = run_probe_file(capsys, tmp_path, port, secret_file, PAP_MODULE.format(user="alice", timeout=5, window=60))
    same_verdict(auth, run)
    assert auth[0] == 3 and auth[1]["error_kind"] == "internal"
    assert auth[1]["error_detail"] == "RuntimeError: a bug in the method"
    assert run[1]["verdict"] == "UNKNOWN" and run[1]["failures"] == ["could not probe: RuntimeError: a bug in the method"]
    assert [d["code"] for d in auth[1]["diagnosis"]] == ["internal_error"]


@pytest.mark.usefixtures("password_env")
def test_auth_summary_shows_the_exit_codes_verdict(capsys: pytest.CaptureFixture[str], secret_file: Path) -> None:
    config = default_config()
    config.sign_replies = "never"
    with emulator_in_thread(config) as port:
        code = cli.main(["auth", f"127.0.0.1:{port}", "--secret-file", str(secret_file), *pap_auth_args("alice")])
    out = capsys.readouterr().out
    assert code == 1 and "[DEGRADED]" in out and "Blast-RADIUS" in out
