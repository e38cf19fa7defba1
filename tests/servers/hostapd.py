"""hostapd's integrated RADIUS/EAP server (Debian package hostapd) as an independent peer.

Why: the probe's PEAP, EAP-TLS and MS-MPPE code must meet an EAP server we did not write
besides FreeRADIUS. hostapd runs with ``driver=none`` (no wireless interface) as a standalone
RADIUS authentication server: ``eap_server=1``, a user file, the lab PKI.

Binding: hostapd's RADIUS server binds ``0.0.0.0:<port>`` (radius_server.c opens an INADDR_ANY
socket; there is no bind-address option, and ``radius_server_ipv6`` only switches to an IPv6
any-address socket). It is kept loopback-only by its clients file: it answers 127.0.0.1/32 only
(a request from any other address is ignored as an unknown client), and the tests send only to
127.0.0.1.

API
---
* ``HOSTAPD``: the binary's path, or None when it is not installed.
* ``HostapdUser(identity, methods, password=None, phase2=False)``: one eap_user line.
* ``with HostapdServer(directory, secret, users, ca=..., server_cert=..., server_key=...) as srv``:
  starts hostapd on a free UDP port, waits (bounded) until that port is bound, and on exit
  stops exactly the process it started (SIGTERM, then SIGKILL). ``srv.port``, ``srv.log_text()``
  (hostapd's debug output, without the secret or passwords).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

HOSTAPD = shutil.which("hostapd") or ("/usr/sbin/hostapd" if Path("/usr/sbin/hostapd").exists() else None)

STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class HostapdUser:
    """One line of hostapd's eap_user file: ``"identity" METHOD[,METHOD] ["password"] [[2]]``."""

    identity: str
    methods: str  # e.g. "TLS", "PEAP", "MSCHAPV2"
    password: str | None = None
    phase2: bool = False  # a user for the inner (tunnelled) method of PEAP

    def line(self) -> str:
        for text in (self.identity, self.password or ""):
            if '"' in text or "\n" in text:
                raise ValueError("hostapd eap_user fields cannot hold quotes or newlines")
        parts = [f'"{self.identity}"' if self.identity != "*" else "*", self.methods]
        if self.password is not None:
            parts.append(f'"{self.password}"')
        if self.phase2:
            parts.append("[2]")
        return " ".join(parts)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _udp_bound(port: int, pid: int) -> bool:
    """Whether ``port`` is bound on IPv4 UDP by a socket of process ``pid`` (from /proc, no packets sent)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return False
    with open("/proc/net/udp") as table:
        next(table)
        for row in table:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                return True
    return False


class HostapdServer:
    """One hostapd process serving RADIUS on 127.0.0.1:<free port> for the lifetime of the context."""

    def __init__(self, directory: Path, secret: str, users: Sequence[HostapdUser], *, ca: Path, server_cert: Path,
                 server_key: Path, tls_flags: str = "", extra: Sequence[str] = ()) -> None:
        if HOSTAPD is None:
            raise RuntimeError("hostapd is not installed (Debian package hostapd)")
        self.directory = directory
        self._secret = secret
        self._hidden = [secret, *(u.password for u in users if u.password)]
        self.users = list(users)
        self.port = free_udp_port()
        self.log_path = directory / "hostapd.log"
        self.conf = directory / "hostapd.conf"
        clients = directory / "radius_clients"
        clients.write_text(f"127.0.0.1/32 {secret}\n")
        os.chmod(clients, 0o600)
        eap_users = directory / "eap_users"
        eap_users.write_text("".join(u.line() + "\n" for u in users))
        os.chmod(eap_users, 0o600)
        lines = [
            "driver=none",
            f"interface=rp{self.port}",  # a name only: driver=none touches no interface
            "logger_stdout=-1",
            "logger_stdout_level=0",
            "eap_server=1",
            f"eap_user_file={eap_users}",
            f"ca_cert={ca}",
            f"server_cert={server_cert}",
            f"private_key={server_key}",
            f"radius_server_clients={clients}",
            f"radius_server_auth_port={self.port}",
            "radius_server_acct_port=0",
            *([f"tls_flags={tls_flags}"] if tls_flags else []),
            *extra,
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "HostapdServer":
        assert HOSTAPD is not None
        log = self.log_path.open("wb")
        try:
            self.proc = subprocess.Popen([HOSTAPD, "-dd", "-t", str(self.conf)], stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        finally:
            log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _udp_bound(self.port, self.proc.pid):
            if self.proc.poll() is not None or time.monotonic() >= deadline:
                text = self.log_text()
                self.stop()
                raise RuntimeError(f"hostapd did not start on UDP port {self.port}:\n{text[-4000:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> int | None:
        """SIGTERM to exactly the process we started, SIGKILL if it overruns; its exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
        return proc.returncode

    def log_text(self) -> str:
        """hostapd's debug output with the shared secret and user passwords removed."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        for hidden in self._hidden:
            text = text.replace(hidden, "<hidden>")
        return text

    def __enter__(self) -> "HostapdServer":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
