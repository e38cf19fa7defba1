"""Secrets and temporary files of a newcomer's first hour (issue 13): key and PKCS#12 passphrases from a
file or an environment variable, ``--help`` naming every variable read, the TLS key log created 0600,
temporary lab PKI folders removed on exit (kept when the user named the folder)."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from probe.cli import ENVIRONMENT
from probe.emulator.config import DEFAULT_SECRET, default_users
from probe.pki import init_pki
from tests.helpers import CLI, ROOT, clean_env, cli, free_udp_port

PASSPHRASE = "key-pass-phrase-9"
LISTENING = re.compile(r"NPS emulator listening on 127\.0\.0\.1:(\d+)")


def start_emulator(*args: str, tmpdir: Path | None = None) -> tuple[subprocess.Popen[str], int, list[str]]:
    env = clean_env({"TMPDIR": str(tmpdir)} if tmpdir else None)
    proc = subprocess.Popen([*CLI, "emulator", "--listen", f"127.0.0.1:{free_udp_port()}", "--duration", "60", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    head: list[str] = []
    for _ in range(3):
        head.append(proc.stdout.readline())
    match = LISTENING.search(head[0])
    assert match, head
    return proc, int(match.group(1)), head


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, extra_users=list(default_users()), key_passphrase=PASSPHRASE)
    return directory


@pytest.fixture(scope="module")
def emulator(pki_dir: Path) -> Iterator[int]:
    proc, port, _ = start_emulator("--pki", str(pki_dir))
    try:
        yield port
    finally:
        stop(proc)


def auth(port: int, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    secret = tmp_path / "secret"
    secret.write_text(DEFAULT_SECRET + "\n")
    return cli("auth", f"127.0.0.1:{port}", "--secret-file", str(secret), "--identity", "alice", "--json",
               "--timeout", "5", "--retries", "0", *args, env=env)


def test_pkcs12_password_from_a_file_or_the_environment(emulator: int, pki_dir: Path, tmp_path: Path) -> None:
    base = ("--method", "peap-tls", "--pkcs12", str(pki_dir / "alice.p12"), "--ca", str(pki_dir / "ca.pem"),
            "--server-name", "nps.lab.test")
    password = (pki_dir / "p12-password.txt").read_text().strip()
    from_file = auth(emulator, tmp_path, *base, "--pkcs12-password-file", str(pki_dir / "p12-password.txt"))
    assert from_file.returncode == 0 and json.loads(from_file.stdout)["result"] == "accept", from_file.stderr
    from_env = auth(emulator, tmp_path, *base, env={"RADIUS_PROBE_PKCS12_PASSWORD": password})
    assert from_env.returncode == 0 and json.loads(from_env.stdout)["result"] == "accept", from_env.stderr
    wrong = auth(emulator, tmp_path, *base, env={"RADIUS_PROBE_PKCS12_PASSWORD": "not-it-42"})
    assert wrong.returncode == 3 and "not-it-42" not in wrong.stdout + wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1 and "PKCS#12" in wrong.stderr, wrong.stderr


def test_key_passphrase_from_a_file_or_the_environment(emulator: int, pki_dir: Path, tmp_path: Path) -> None:
    base = ("--method", "eap-tls", "--cert", str(pki_dir / "alice.pem"), "--key", str(pki_dir / "alice-encrypted.key"),
            "--ca", str(pki_dir / "ca.pem"), "--server-name", "nps.lab.test")
    phrase = tmp_path / "key.pass"
    phrase.write_text(PASSPHRASE + "\n")
    phrase.chmod(0o600)
    from_file = auth(emulator, tmp_path, *base, "--key-password-file", str(phrase))
    assert from_file.returncode == 0 and json.loads(from_file.stdout)["result"] == "accept", from_file.stderr
    from_env = auth(emulator, tmp_path, *base, env={"RADIUS_PROBE_KEY_PASSWORD": PASSPHRASE})
    assert from_env.returncode == 0 and json.loads(from_env.stdout)["result"] == "accept", from_env.stderr
    missing = auth(emulator, tmp_path, *base)
    assert missing.returncode == 3 and PASSPHRASE not in missing.stderr


def test_help_names_every_environment_variable_read() -> None:
    read = set()
    for path in (ROOT / "probe").rglob("*.py"):
        read |= set(re.findall(r"environ(?:\.get\(|\[)\s*[\"'](RADIUS_PROBE_\w+)", path.read_text()))
    assert read and read <= set(ENVIRONMENT), read - set(ENVIRONMENT)
    top = cli("--help").stdout
    assert all(name in top for name in read)
    auth_help = cli("auth", "--help").stdout
    for name in ("RADIUS_PROBE_SECRET", "RADIUS_PROBE_PASSWORD", "RADIUS_PROBE_KEY_PASSWORD",
                 "RADIUS_PROBE_PKCS12_PASSWORD"):
        assert name in auth_help, name
    assert "RADIUS_PROBE_SECRET" in cli("serve", "--help").stdout
    assert "--key-password-file" in auth_help and "--pkcs12-password-file" in auth_help


def test_keylog_is_created_0600(emulator: int, pki_dir: Path, tmp_path: Path) -> None:
    base = ("--method", "eap-tls", "--cert", str(pki_dir / "alice.pem"), "--key", str(pki_dir / "alice.key"),
            "--ca", str(pki_dir / "ca.pem"), "--server-name", "nps.lab.test")
    old = os.umask(0o022)
    try:
        keylog = tmp_path / "tls.keys"
        r = auth(emulator, tmp_path, *base, "--keylog", str(keylog))
        assert r.returncode == 0, r.stderr
        assert stat.S_IMODE(keylog.stat().st_mode) == 0o600
        assert re.search(r"^(CLIENT_RANDOM|CLIENT_HANDSHAKE_TRAFFIC_SECRET) ", keylog.read_text(), re.M)
        loose = tmp_path / "loose.keys"
        loose.write_text("")
        loose.chmod(0o644)
        r = auth(emulator, tmp_path, *base, "--keylog", str(loose))
        assert r.returncode == 0 and stat.S_IMODE(loose.stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_the_emulators_temporary_pki_is_removed_on_exit(tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc, _, head = start_emulator(tmpdir=tmpdir)
    try:
        made = list(tmpdir.glob("radius-probe-pki-*"))
        assert len(made) == 1 and (made[0] / "ca.pem").is_file(), head
        assert "removed on exit" in "".join(head)
    finally:
        stop(proc)
    assert proc.returncode == 0 and not made[0].exists()

    named = tmp_path / "lab"
    proc, _, _ = start_emulator("--pki", str(named), tmpdir=tmpdir)
    stop(proc)
    assert (named / "ca.pem").is_file() and not list(tmpdir.iterdir())  # the user's folder stays


def test_the_demos_temporary_pki_is_removed_even_on_sigterm(tmp_path: Path) -> None:
    env = clean_env({"TMPDIR": str(tmp_path)})
    proc = subprocess.Popen([*CLI, "demo"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for _ in range(300):  # bounded: up to 30 s for the demo to write its PKI
            made = list(tmp_path.glob("radius-probe-demo-*"))
            if made and (made[0] / "pki" / "server-chain.pem").exists():
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        assert made
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not list(tmp_path.glob("radius-probe-demo-*"))
