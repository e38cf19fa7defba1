"""A real FreeRADIUS 3.2 (Debian's /usr/sbin/freeradius) on 127.0.0.1, configured by the test.

Why: the probe's wire behaviour must be proven against a real server, not a
mock. This helper writes a small self-contained raddb under a test's work
directory, starts ``freeradius -f -xx`` (threaded, so one held request does
not block the others) on free UDP ports of 127.0.0.1, and stops exactly that
process again.

API
---
``FreeRadiusServer(workdir, secret, users, *, eap=None, binary=FREERADIUS_BINARY,
startup_timeout_s=20.0)``

* ``workdir``: an empty-ish directory the helper owns (pytest ``tmp_path``).
  It gets ``raddb/``, ``freeradius.log`` (the server's ``-xx`` debug log) and
  ``events.log`` (one line per decision the config took, see ``events()``).
* ``secret``: the RADIUS shared secret for client 127.0.0.1 on both ports.
* ``users``: a sequence of ``User`` (see below). A User-Name not listed is
  rejected with Reply-Message "Unknown user".
* ``eap``: an ``EapConfig`` to enable EAP-TLS, PEAP-MSCHAPv2 and PEAP with
  inner EAP-TLS (see "EAP" below); ``None`` serves PAP only.

Use it as a context manager (``with FreeRadiusServer(...) as srv:``), or call
``start()`` / ``stop()``. ``start()`` returns once the log says "Ready to
process requests"; it retries with new ports if a port was taken meanwhile.
``stop()`` sends SIGTERM to the server's own PID only (SIGKILL after 10 s).

Ports and attributes once started:

* ``srv.host`` is "127.0.0.1".
* ``srv.port``: auth port whose client does NOT require Message-Authenticator.
* ``srv.port_require_ma``: auth port whose client has
  ``require_message_authenticator = yes``: requests without a
  Message-Authenticator are dropped silently.
* ``srv.pid``, ``srv.log_path``, ``srv.events_path``.
* ``srv.log_text(since=0)``: the debug log (from byte offset ``since``) with the
  shared secret, passwords and codes replaced by ``<redacted>``;
  ``srv.log_size()`` gives an offset to read "what happened after this point".
* ``srv.wait_for_log(regex, timeout_s=10.0, since=0)`` polls the redacted log.
* ``srv.events()``: list of ``Event(kind, user, src_port, vector)`` in order;
  kinds are ``accept``, ``reject``, ``challenge``, ``discard``,
  ``hold-start``, ``hold-end``. ``vector`` is the request authenticator as
  "0x…" hex, so a retransmission (same bytes) has the same vector.

Users (``User`` dataclass, all behaviours use PAP's User-Password):

* ``User("alice", "pw")``: behaviour ``accept``. Right password ->
  Access-Accept with Reply-Message (``reply_message`` or "Welcome <name>") and
  ``reply_attributes``, a tuple of ``(attribute, value)`` pairs added in order,
  e.g. ``(("Class", b"grp"), ("Session-Timeout", 3600), ("Filter-Id", "vpn"),
  ("Tunnel-Type:1", "VLAN"), ("Tunnel-Medium-Type:1", "IEEE-802"),
  ("Tunnel-Private-Group-Id:1", "10"))``. ``bytes`` are sent as octets, ``int``
  as a number, ``str`` as text (or an enumerated value name). Wrong password ->
  Access-Reject with Reply-Message "Authentication failed".
* ``behaviour=Behaviour.REJECT``: always Access-Reject with Reply-Message
  (``reply_message`` or "Access denied by policy").
* ``behaviour=Behaviour.DISCARD``: the server never answers this user (the
  final Accept or Reject is dropped; EAP's intermediate Access-Challenges are
  still sent, like NPS when the MFA extension cannot get a token).
* ``behaviour=Behaviour.OTP`` with ``otp_code="123456"``: the right password
  -> Access-Challenge with State and Reply-Message OTP_PROMPT; the next
  request with that State and User-Password = the code -> Access-Accept, a
  wrong code or unknown State -> Access-Reject.
* ``hold_s``: seconds the final positive answer (Accept, or the discard
  decision) is held with rlm_exec running /bin/sleep, for MFA-like delays up
  to MAX_HOLD_S (max_request_time is raised to 180 s so the reply is not
  lost). Other requests are served meanwhile. A retransmission with the same
  bytes while held is ignored as a duplicate (log: "Ignoring duplicate
  packet ... due to unfinished request"); after the answer and within
  cleanup_delay (5 s) it gets the cached reply again; later it is a new
  request.
* Names, passwords, codes, messages and the secret are written as literal
  config strings: a quote, a backslash or a control character raises
  ValueError (naming the field, never the value).

Example::

    users = [User("alice", "pw-1", reply_attributes=(("Class", b"x"),)),
             User("hal", "pw-2", hold_s=65),
             User("otto", "pw-3", behaviour=Behaviour.OTP, otp_code="123456")]
    with FreeRadiusServer(tmp_path, "s3cret", users) as srv:
        ...  # send to (srv.host, srv.port); on failure print srv.log_text()

``freeradius_available()`` tells tests whether to skip; ``FreeRadiusError``
is raised when the server cannot be configured or started (with the log tail).

EAP (``eap=EapConfig(ca_file, server_cert, server_key, server_key_password=None,
tls_min_version="1.2", tls_max_version="1.2", peap_tls_max_version="1.2",
default_eap_type="peap", fragment_size=1024, session_cache=False, methods=("tls", "peap", "mschapv2", "ttls"))``;
a method left out of ``methods`` is not offered: a Nak for it gets Access-Reject):

* One CA issues the server certificate and is trusted for client
  certificates (outer EAP-TLS and PEAP's inner EAP-TLS). EAP-TLS may use TLS
  1.3 (``tls_max_version="1.3"``; FreeRADIUS prints a warning banner, it
  works); PEAP has its own limit, 1.2 by default as with NPS.
* PEAP's inner methods are EAP-MSCHAPv2 (the user's ``password``) and EAP-TLS
  (the ``inner-eap`` module); FreeRADIUS proposes MSCHAPv2 first, an EAP-TLS
  peer Naks it. No Cryptobinding TLV is sent.
* Behaviours act on the final round only, keyed on the PEAP inner identity
  when there is one (so an anonymous outer identity works), else on the EAP
  identity. A certificate-only user is ``User("carol")``. ``reject`` lets the
  method succeed, then answers Access-Reject with EAP-Failure and no MPPE
  keys (like the MFA extension); ``discard`` drops the final answer;
  ``hold_s`` holds the final Access-Accept. ``otp`` is PAP only. An identity
  with no ``User`` entry gets Access-Reject "Unknown user" at the end.
* Files: FreeRADIUS refuses a globally *writable* key, certificate or CA file
  ("Refusing to start due to insecure configuration"); a world-readable key
  is accepted. No DH parameter file is needed (ECDHE). The server runs as the
  calling user (no user/group switch), so the files need no special owner.

Known FreeRADIUS behaviour worth knowing when writing tests: a PAP request
with a wrong shared secret and no Message-Authenticator gets an
Access-Reject (the password decodes to garbage) that the client cannot
verify; with a Message-Authenticator the server drops it. PAP replies carry
no Message-Authenticator.
"""

from __future__ import annotations

import enum
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

FREERADIUS_BINARY = Path("/usr/sbin/freeradius")
HOST = "127.0.0.1"
OTP_PROMPT = "Enter your Microsoft verification code"
WRONG_PASSWORD_MESSAGE = "Authentication failed"
POLICY_REJECT_MESSAGE = "Access denied by policy"
UNKNOWN_USER_MESSAGE = "Unknown user"
UNKNOWN_STATE_MESSAGE = "Unknown State"
_OTP_AUTH_TYPE = "OTP-Challenge"
_OTP_MARK = "'otp-challenged'"
# Who post-auth decides for: the PEAP inner identity (saved by the inner tunnel) or User-Name.
_EFFECTIVE_USER = "&control:Tmp-String-5"
_EFFECTIVE_USER_XLAT = "%{%{session-state:Tmp-String-4}:-%{User-Name}}"
_INNER_SERVER = "inner-tunnel"
# One events.log line; Event/events() parse it back.
_EVENT_FORMAT = (
    "kind=%{control:Tmp-String-1} user=%{%{control:Tmp-String-5}:-%{User-Name}}"
    " src_port=%{Packet-Src-Port} vector=%{Packet-Authentication-Vector}"
)
_MPPE_ATTRIBUTES = ("MS-MPPE-Send-Key", "MS-MPPE-Recv-Key", "MS-MPPE-Encryption-Policy", "MS-MPPE-Encryption-Types")
MAX_REQUEST_TIME_S = 180
# Holds above this would run into max_request_time, which cancels the request
# and sends no reply at all.
MAX_HOLD_S = MAX_REQUEST_TIME_S - 20
# rlm_exec kills its program after `timeout` (which may not exceed max_request_time).
_EXEC_TIMEOUT_S = MAX_HOLD_S + 10
_READY_LINE = "Ready to process requests"
_BIND_FAILED = re.compile(r"Failed binding to|Address already in use")
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]*(:[0-9]{1,2})?$")

AttrValue = str | int | bytes


class Behaviour(enum.StrEnum):
    """What the server does with a user's request (see the module docstring)."""

    ACCEPT = "accept"
    REJECT = "reject"
    DISCARD = "discard"
    OTP = "otp"


@dataclass(frozen=True)
class User:
    """One PAP user and the answer the server gives it; secrets stay out of repr."""

    name: str
    password: str = field(default="", repr=False)
    behaviour: Behaviour = Behaviour.ACCEPT
    reply_message: str | None = None
    reply_attributes: tuple[tuple[str, AttrValue], ...] = ()
    hold_s: float = 0.0
    otp_code: str = field(default="", repr=False)
    # SMB-Account-CTRL-TEXT for rlm_mschap, e.g. "[L]" (locked: MS-CHAP-Error E=647), "[D]" (disabled)
    account_ctrl: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("User.name must not be empty")
        if not 0 <= self.hold_s <= MAX_HOLD_S:
            raise ValueError(f"User {self.name!r}: hold_s must be within 0..{MAX_HOLD_S}")
        if self.behaviour is Behaviour.OTP and not self.otp_code:
            raise ValueError(f"User {self.name!r}: behaviour otp needs otp_code")
        for attribute, _ in self.reply_attributes:
            if not _ATTRIBUTE_NAME.match(attribute):
                raise ValueError(f"User {self.name!r}: bad attribute name {attribute!r}")


_TLS_VERSIONS = ("1.0", "1.1", "1.2", "1.3")
_EAP_TYPES = ("tls", "peap", "mschapv2", "ttls")


@dataclass(frozen=True)
class EapConfig:
    """Certificates and TLS limits for EAP-TLS, PEAP-MSCHAPv2 and PEAP-TLS (inner EAP-TLS).

    One CA both issues the server certificate chain and is trusted for client
    certificates; the same server certificate serves the outer EAP-TLS/PEAP
    handshake and the inner EAP-TLS of PEAP-TLS. EAP-TLS may reach TLS 1.3;
    PEAP stays at ``peap_tls_max_version`` (1.2 by default, as NPS does).
    """

    ca_file: Path
    server_cert: Path
    server_key: Path
    server_key_password: str | None = field(default=None, repr=False)
    tls_min_version: str = "1.2"
    tls_max_version: str = "1.2"
    peap_tls_max_version: str = "1.2"
    default_eap_type: str = "peap"
    fragment_size: int = 1024
    session_cache: bool = False
    methods: tuple[str, ...] = ("tls", "peap", "mschapv2", "ttls")
    """The outer eap sub-modules configured: one left out is a method the server does not offer (a Nak for
    it gets Access-Reject), as a network policy without that EAP type."""

    def __post_init__(self) -> None:
        for name in ("tls_min_version", "tls_max_version", "peap_tls_max_version"):
            if getattr(self, name) not in _TLS_VERSIONS:
                raise ValueError(f"EapConfig.{name} must be one of {_TLS_VERSIONS}")
        if self.default_eap_type not in _EAP_TYPES:
            raise ValueError(f"EapConfig.default_eap_type must be one of {_EAP_TYPES}")
        if not 64 <= self.fragment_size <= 4096:
            raise ValueError("EapConfig.fragment_size must be within 64..4096")
        if not self.methods or not set(self.methods) <= set(_EAP_TYPES):
            raise ValueError(f"EapConfig.methods must be a non-empty subset of {_EAP_TYPES}")
        if self.default_eap_type not in self.methods:
            raise ValueError("EapConfig.default_eap_type must be one of EapConfig.methods")


@dataclass(frozen=True)
class Event:
    """One line of events.log: a decision the server's policy took for one request."""

    kind: str
    user: str
    src_port: int
    vector: str


class FreeRadiusError(RuntimeError):
    """The server could not be configured or started; the message carries the log tail."""


def freeradius_available(binary: Path = FREERADIUS_BINARY) -> bool:
    """True when the Debian freeradius binary is installed (tests skip otherwise)."""
    return binary.is_file() and os.access(binary, os.X_OK)


def _quote(text: str, what: str) -> str:
    """A single-quoted unlang/config literal (no expansion); `what` names the field in errors."""
    if "'" in text or "\\" in text or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise ValueError(f"{what} must not contain quotes, backslashes or control characters")
    return f"'{text}'"


def _value(value: AttrValue, what: str) -> str:
    """Render an attribute value: bytes as hex octets, int as a number, str quoted."""
    if isinstance(value, bytes):
        return "0x" + value.hex() if value else "''"
    if isinstance(value, int):
        return str(value)
    return _quote(value, what)


def _free_udp_ports(count: int) -> list[int]:
    """Ports the kernel hands out now; the caller retries if one is taken before use."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _indent(lines: Sequence[str], depth: int) -> list[str]:
    return ["\t" * depth + line if line else line for line in lines]


class _Policy:
    """Renders the unlang that gives each user its behaviour."""

    def __init__(self, users: Sequence[User]) -> None:
        self._users = users

    @staticmethod
    def _match(user: User, attribute: str = "&User-Name") -> str:
        return f"{attribute} == {_quote(user.name, 'User.name')}"

    @staticmethod
    def effective_user() -> list[str]:
        """Post-auth keys on the inner identity (PEAP) when there is one, else on User-Name."""
        return ["update control {", f'\t{_EFFECTIVE_USER} := "{_EFFECTIVE_USER_XLAT}"', "}"]

    def _chain(self, branches: list[tuple[str, list[str]]], otherwise: list[str]) -> list[str]:
        """An if/elsif/else chain over users; empty branches are kept so order is stable."""
        lines: list[str] = []
        for index, (condition, body) in enumerate(branches):
            lines.append(f"{'if' if index == 0 else 'elsif'} ({condition}) {{")
            lines += _indent(body or ["noop"], 1)
            lines.append("}")
        if otherwise:
            lines.append("else {" if branches else "{")
            lines += _indent(otherwise, 1)
            lines.append("}")
        return lines

    @staticmethod
    def event(kind: str) -> list[str]:
        return ["update control {", f"\t&Tmp-String-1 := '{kind}'", "}", "events"]

    @staticmethod
    def password(value: str, what: str) -> list[str]:
        return ["update control {", f"\t&Cleartext-Password := {_quote(value, what)}", "}"]

    @staticmethod
    def reject_with(message: str) -> list[str]:
        return ["update reply {", f"\t&Reply-Message := {_quote(message, 'reply_message')}", "}", "reject"]

    def _authorize_user(self, user: User) -> list[str]:
        if user.behaviour is Behaviour.REJECT:
            return self.reject_with(user.reply_message or POLICY_REJECT_MESSAGE)
        if user.behaviour is not Behaviour.OTP:
            ctrl = [f"\t&SMB-Account-CTRL-TEXT := {_quote(user.account_ctrl, 'User.account_ctrl')}"]
            return [*self.password(user.password, "User.password")[:-1], *(ctrl if user.account_ctrl else []), "}"]
        return [
            "if (&State) {",
            f"\tif (&session-state:Tmp-String-3 == {_OTP_MARK}) {{",
            *_indent(self.password(user.otp_code, "User.otp_code"), 2),
            "\t}",
            "\telse {",
            *_indent(self.reject_with(UNKNOWN_STATE_MESSAGE), 2),
            "\t}",
            "}",
            "else {",
            *_indent(self.password(user.password, "User.password"), 1),
            "\tupdate control {",
            f"\t\t&Auth-Type := '{_OTP_AUTH_TYPE}'",
            "\t}",
            "}",
        ]

    def authorize(self) -> list[str]:
        """Per user: the password to check (or an immediate reject)."""
        branches = [(self._match(u), self._authorize_user(u)) for u in self._users]
        return self._chain(branches, self.reject_with(UNKNOWN_USER_MESSAGE))

    def _hold(self, user: User) -> list[str]:
        if not user.hold_s:
            return []
        sleep = ["update control {", f"\t&Tmp-String-2 := '{user.hold_s:g}'", "}", "hold_sleep"]
        return [*self.event("hold-start"), *sleep, *self.event("hold-end")]

    def _accept(self, user: User) -> list[str]:
        message = user.reply_message or f"Welcome {user.name}"
        updates = [f"\t&Reply-Message := {_quote(message, 'reply_message')}"]
        updates += [
            f"\t&{name} += {_value(value, f'reply attribute {name}')}" for name, value in user.reply_attributes
        ]
        return [*self._hold(user), "update reply {", *updates, "}", *self.event("accept")]

    def _post_auth_user(self, user: User) -> list[str]:
        if user.behaviour is Behaviour.DISCARD:
            return [*self._hold(user), *self.discard()]
        if user.behaviour is Behaviour.REJECT:
            # Only EAP gets here (PAP rejects in authorize): like the MFA extension,
            # refuse after the method itself succeeded.
            return self.reject_with(user.reply_message or POLICY_REJECT_MESSAGE)
        return self._accept(user)

    def discard(self) -> list[str]:
        return ["update control {", "\t&Response-Packet-Type := Do-Not-Respond", "}", *self.event("discard")]

    def post_auth(self) -> list[str]:
        """Per user: hold, reply attributes or discard on the positive path."""
        branches = [(self._match(u, _EFFECTIVE_USER), self._post_auth_user(u)) for u in self._users]
        return [*self.effective_user(), *self._chain(branches, self.reject_with(UNKNOWN_USER_MESSAGE))]

    def otp_challenge(self) -> list[str]:
        """Auth-Type for an OTP user's first round: the password is right -> Access-Challenge.

        The session-state mark makes FreeRADIUS mint a fresh State and restore
        the mark only for a request that carries that State back.
        """
        return [
            f"Auth-Type {_OTP_AUTH_TYPE} {{",
            "\tpap",
            "\tupdate session-state {",
            f"\t\t&Tmp-String-3 := {_OTP_MARK}",
            "\t}",
            "\tupdate reply {",
            f"\t\t&Reply-Message := {_quote(OTP_PROMPT, 'prompt')}",
            "\t}",
            "\tupdate control {",
            "\t\t&Response-Packet-Type := Access-Challenge",
            "\t}",
            *_indent(self.event("challenge"), 1),
            "\thandled",
            "}",
        ]

    @staticmethod
    def _eap_failure_instead_of_success() -> list[str]:
        """A reject after EAP succeeded must carry EAP-Failure (same Identifier) and no keys.

        rlm_eap only inserts EAP-Failure when the reply has no EAP-Message yet,
        so the EAP-Success is rewritten here.
        """
        return [
            "if (&reply:EAP-Message && (&reply:EAP-Message =~ /^0x03([0-9a-f]{2})0004$/)) {",
            "\tupdate reply {",
            '\t\t&EAP-Message := "0x04%{1}0004"',
            *[f"\t\t&{name} !* ANY" for name in _MPPE_ATTRIBUTES],
            "\t}",
            "}",
        ]

    def post_auth_reject(self) -> list[str]:
        """Rejects keep a Reply-Message; discard users stay silent even when rejected."""
        discard_users = [u for u in self._users if u.behaviour is Behaviour.DISCARD]
        reject = [
            *self._eap_failure_instead_of_success(),
            "update reply {",
            f"\t&Reply-Message = {_quote(WRONG_PASSWORD_MESSAGE, 'message')}",
            "}",
            *self.event("reject"),
        ]
        if discard_users:
            condition = " || ".join(f"({self._match(u, _EFFECTIVE_USER)})" for u in discard_users)
            reject = self._chain([(condition, self.discard())], reject)
        return [*self.effective_user(), *reject]

    def inner_authorize(self) -> list[str]:
        """Inner tunnel (PEAP): passwords for MSCHAPv2; certificate users need none."""
        branches = [
            (self._match(u), self.password(u.password, "User.password")) for u in self._users if u.password
        ]
        return self._chain(branches, [])


class FreeRadiusServer:
    """One FreeRADIUS process with its own raddb; see the module docstring for the API."""

    def __init__(
        self,
        workdir: Path,
        secret: str,
        users: Sequence[User],
        *,
        eap: EapConfig | None = None,
        binary: Path = FREERADIUS_BINARY,
        startup_timeout_s: float = 20.0,
    ) -> None:
        names = [u.name for u in users]
        if len(set(names)) != len(names):
            raise ValueError("user names must be unique")
        if not secret:
            raise ValueError("the shared secret must not be empty")
        _quote(secret, "the shared secret")
        self._workdir = Path(workdir)
        self._secret = secret
        self._users = tuple(users)
        self._eap = eap
        self._binary = Path(binary)
        self._startup_timeout_s = startup_timeout_s
        self._raddb = self._workdir / "raddb"
        self.log_path = self._workdir / "freeradius.log"
        self.events_path = self._workdir / "events.log"
        self._stdout_path = self._workdir / "freeradius.stdout"
        self._process: subprocess.Popen[bytes] | None = None
        self._ports: tuple[int, int] | None = None

    # -- public properties -------------------------------------------------

    host = HOST

    @property
    def port(self) -> int:
        """Auth port whose client does not require Message-Authenticator."""
        return self._started_ports()[0]

    @property
    def port_require_ma(self) -> int:
        """Auth port whose client requires Message-Authenticator (unsigned requests are dropped)."""
        return self._started_ports()[1]

    @property
    def pid(self) -> int:
        if self._process is None:
            raise FreeRadiusError("server not started")
        return self._process.pid

    def _started_ports(self) -> tuple[int, int]:
        if self._ports is None or self._process is None:
            raise FreeRadiusError("server not started")
        return self._ports

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> FreeRadiusServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Write the config, launch, wait for readiness; new ports if one got taken meanwhile."""
        if self._process is not None:
            raise FreeRadiusError("server already started")
        if not freeradius_available(self._binary):
            raise FreeRadiusError(f"{self._binary} is not installed")
        failure = ""
        for _ in range(3):
            port, port_ma = _free_udp_ports(2)
            self._ports = (port, port_ma)
            self._write_config(port, port_ma)
            self._launch()
            if self._await_ready():
                return
            failure = self._tail()
            self._reap()
            if not _BIND_FAILED.search(failure):
                raise FreeRadiusError(f"freeradius did not start:\n{failure}")
        raise FreeRadiusError(f"freeradius could not bind free ports:\n{failure}")

    def stop(self) -> None:
        """SIGTERM our own PID (SIGKILL if it lingers); idempotent."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self._process = None

    def _launch(self) -> None:
        for path in (self.log_path, self.events_path):
            path.write_bytes(b"")
            path.chmod(0o600)
        argv = [str(self._binary), "-f", "-xx", "-d", str(self._raddb), "-n", "radiusd", "-l", str(self.log_path)]
        with self._stdout_path.open("wb") as out:
            self._process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

    def _await_ready(self) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + self._startup_timeout_s
        while time.monotonic() < deadline:
            if _READY_LINE in self._raw_log():
                return True
            if self._process.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def _reap(self) -> None:
        self.stop()
        self._ports = None

    # -- logs --------------------------------------------------------------

    def _raw_log(self, since: int = 0) -> str:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(since)
                return handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def _redact(self, text: str) -> str:
        hidden = {self._secret}
        for user in self._users:
            hidden.update(v for v in (user.password, user.otp_code) if v)
        if self._eap is not None and self._eap.server_key_password:
            hidden.add(self._eap.server_key_password)
        for value in sorted(hidden, key=len, reverse=True):
            text = text.replace(value, "<redacted>")
        return text

    def log_size(self) -> int:
        """Current size of the debug log: pass it as `since` to read only what follows."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_text(self, since: int = 0) -> str:
        """The debug log (plus anything the process printed) with secrets redacted."""
        text = self._raw_log(since)
        if since == 0 and self._stdout_path.exists():
            text += self._stdout_path.read_text("utf-8", "replace")
        return self._redact(text)

    def _tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_for_log(self, pattern: str, timeout_s: float = 10.0, since: int = 0) -> re.Match[str]:
        """Poll the redacted log for `pattern`; FreeRadiusError with the log tail if it never shows."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        while True:
            found = regex.search(self._redact(self._raw_log(since)))
            if found:
                return found
            if time.monotonic() >= deadline:
                raise FreeRadiusError(f"log never matched {pattern!r}; tail:\n{self._tail()}")
            time.sleep(0.05)

    def events(self) -> list[Event]:
        """Decisions the policy took, in order (one line per linelog call)."""
        events = []
        for line in self.events_path.read_text("utf-8", "replace").splitlines():
            fields = dict(part.split("=", 1) for part in line.split(" ") if "=" in part)
            events.append(Event(fields["kind"], fields["user"], int(fields["src_port"]), fields["vector"]))
        return events

    # -- configuration -----------------------------------------------------

    def _write_config(self, port: int, port_ma: int) -> None:
        self._raddb.mkdir(parents=True, exist_ok=True)
        self._raddb.chmod(0o700)
        (self._workdir / "run").mkdir(exist_ok=True)
        files = {
            "dictionary": "# no local attributes\n",
            "radiusd.conf": self._radiusd_conf(),
            "clients.conf": self._clients_conf(),
            "modules.conf": self._modules_conf(),
            "site.conf": self._site_conf(port, port_ma),
        }
        if self._eap is not None:
            files["eap.conf"] = self._eap_modules_conf(self._eap)
            files["inner-tunnel.conf"] = self._inner_site()
        for name, text in files.items():
            path = self._raddb / name
            path.write_text(text)
            path.chmod(0o600)

    def _radiusd_conf(self) -> str:
        run_dir = self._workdir / "run"
        return f"""\
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
libdir = /usr/lib/freeradius
raddbdir = {_quote(str(self._raddb), 'raddb path')}
confdir = ${{raddbdir}}
modconfdir = ${{confdir}}/mods-config
certdir = ${{confdir}}
cadir = ${{confdir}}
logdir = {_quote(str(self._workdir), 'work directory')}
radacctdir = ${{logdir}}
run_dir = {_quote(str(run_dir), 'run path')}
db_dir = ${{run_dir}}
name = freeradius
pidfile = ${{run_dir}}/freeradius.pid
correct_escapes = true
max_request_time = {MAX_REQUEST_TIME_S}
cleanup_delay = 5
max_requests = 16384
hostname_lookups = no
proxy_requests = no

log {{
	destination = files
	colourise = no
	file = {_quote(str(self.log_path), 'log path')}
	stripped_names = no
	auth = yes
	auth_badpass = no
	auth_goodpass = no
}}

security {{
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = yes
}}

thread pool {{
	start_servers = 8
	max_servers = 64
	min_spare_servers = 4
	max_spare_servers = 16
	max_requests_per_server = 0
	auto_limit_acct = no
}}

$INCLUDE clients.conf
$INCLUDE modules.conf
$INCLUDE site.conf
{"$INCLUDE inner-tunnel.conf" if self._eap is not None else ""}
"""

    def _clients_conf(self) -> str:
        secret = _quote(self._secret, "the shared secret")
        blocks = []
        for section, require in (("plain", "no"), ("require_ma", "yes")):
            blocks.append(
                f"clients {section} {{\n"
                f"\tclient localhost {{\n"
                f"\t\tipaddr = {HOST}\n"
                f"\t\tsecret = {secret}\n"
                f"\t\trequire_message_authenticator = {require}\n"
                f"\t\tnas_type = other\n"
                f"\t}}\n"
                f"}}\n"
            )
        return "\n".join(blocks)

    def _modules_conf(self) -> str:
        events = _quote(str(self.events_path), "events path")
        eap_modules = "\t$INCLUDE eap.conf\n" if self._eap is not None else ""
        return f"""\
modules {{
	pap {{
		normalise = yes
	}}
	always reject {{
		rcode = reject
	}}
	always noop {{
		rcode = noop
	}}
	always handled {{
		rcode = handled
	}}
	exec hold_sleep {{
		wait = yes
		program = "/bin/sleep %{{control:Tmp-String-2}}"
		shell_escape = yes
		timeout = {_EXEC_TIMEOUT_S}
	}}
	chap {{
	}}
	mschap {{
	}}
	linelog events {{
		filename = {events}
		escape_filenames = no
		permissions = 0600
		format = "{_EVENT_FORMAT}"
	}}
{eap_modules}}}
"""

    def _site_conf(self, port: int, port_ma: int) -> str:
        policy = _Policy(self._users)
        listeners = "".join(
            f"\tlisten {{\n\t\ttype = auth\n\t\tipaddr = {HOST}\n\t\tport = {p}\n\t\tclients = {c}\n\t}}\n"
            for p, c in ((port, "plain"), (port_ma, "require_ma"))
        )
        pap_authorize = [*policy.authorize(), "chap", "mschap", "pap"]  # RADIUS CHAP / MS-CHAPv2 use the password
        if self._eap is None:
            authorize = pap_authorize
            eap_authenticate = []
        else:
            # bare EAP-MSCHAPv2 runs in this outer site: it needs the outer identity's password
            eap_authorize = [*policy.inner_authorize(), "eap"]
            authorize = ["if (&EAP-Message) {", *_indent(eap_authorize, 1), "}", "else {", *_indent(pap_authorize, 1), "}"]
            eap_authenticate = ["Auth-Type EAP {", "\teap", "}"]
        authorize_text = "\n".join(_indent(authorize, 2))
        authenticate = "\n".join(
            _indent(["Auth-Type PAP {", "\tpap", "}", "Auth-Type CHAP {", "\tchap", "}", "Auth-Type MS-CHAP {",
                     "\tmschap", "}", *policy.otp_challenge(), *eap_authenticate], 2)
        )
        post_auth = "\n".join(_indent(policy.post_auth(), 2))
        reject = "\n".join(_indent(policy.post_auth_reject(), 3))
        return f"""\
server probe {{
{listeners}
	authorize {{
{authorize_text}
	}}
	authenticate {{
{authenticate}
	}}
	post-auth {{
{post_auth}
		Post-Auth-Type REJECT {{
{reject}
		}}
	}}
}}
"""

    def _tls_options(self, eap: EapConfig, max_version: str) -> list[str]:
        """tls-config items shared by the outer EAP-TLS, PEAP and inner EAP-TLS."""
        lines = [
            f"certificate_file = {_quote(str(eap.server_cert), 'server_cert path')}",
            f"private_key_file = {_quote(str(eap.server_key), 'server_key path')}",
            f"ca_file = {_quote(str(eap.ca_file), 'ca_file path')}",
            'cipher_list = "DEFAULT"',
            "cipher_server_preference = no",
            f'tls_min_version = "{eap.tls_min_version}"',
            f'tls_max_version = "{max_version}"',
            'ecdh_curve = ""',
            f"fragment_size = {eap.fragment_size}",
            "include_length = yes",
            "check_crl = no",
            "cache {",
            f"\tenable = {'yes' if eap.session_cache else 'no'}",
            "\tlifetime = 1",
            "}",
            "verify {",
            "}",
            "ocsp {",
            "\tenable = no",
            "}",
        ]
        if eap.server_key_password:
            lines.insert(2, f"private_key_password = {_quote(eap.server_key_password, 'server_key_password')}")
        return lines

    def _eap_modules_conf(self, eap: EapConfig) -> str:
        """Outer `eap` (EAP-TLS, PEAP, EAP-MSCHAPv2) and `inner-eap` for PEAP's inner methods."""
        outer = [
            "eap {",
            f"\tdefault_eap_type = {eap.default_eap_type}",
            "\ttimer_expire = 60",
            "\tignore_unknown_eap_types = no",
            "\tcisco_accounting_username_bug = no",
            "\tmax_sessions = ${max_requests}",
            "\ttls-config tls-eap {",
            *_indent(self._tls_options(eap, eap.tls_max_version), 2),
            "\t}",
            "\ttls-config tls-peap {",
            *_indent(self._tls_options(eap, eap.peap_tls_max_version), 2),
            "\t}",
            *(["\ttls {", "\t\ttls = tls-eap", "\t}"] if "tls" in eap.methods else []),
            *(["\tpeap {",
               "\t\ttls = tls-peap",
               "\t\tdefault_eap_type = mschapv2",
               "\t\tcopy_request_to_tunnel = no",
               "\t\tuse_tunneled_reply = no",
               f"\t\tvirtual_server = {_INNER_SERVER}",
               "\t}"] if "peap" in eap.methods else []),
            *(["\tmschapv2 {", "\t\tsend_error = no", "\t}"] if "mschapv2" in eap.methods else []),
            *(["\tttls {",  # EAP-TTLS (PAP or MS-CHAPv2 inside), TLS limits as PEAP's
               "\t\ttls = tls-peap",
               "\t\tdefault_eap_type = mschapv2",
               "\t\tcopy_request_to_tunnel = no",
               "\t\tuse_tunneled_reply = no",
               f"\t\tvirtual_server = {_INNER_SERVER}",
               "\t}"] if "ttls" in eap.methods else []),
            "}",
        ]
        inner = [
            "eap inner-eap {",
            "\tdefault_eap_type = mschapv2",
            "\ttimer_expire = 60",
            "\tmax_sessions = ${max_requests}",
            "\tmschapv2 {",
            "\t\tsend_error = no",
            "\t}",
            "\ttls-config tls-inner {",
            *_indent(self._tls_options(eap, eap.peap_tls_max_version), 2),
            "\t}",
            "\ttls {",
            "\t\ttls = tls-inner",
            "\t}",
            "}",
        ]
        return "\n".join(_indent([*outer, *inner], 1)) + "\n"

    def _inner_site(self) -> str:
        """PEAP's inner tunnel: MSCHAPv2 against the users' passwords or inner EAP-TLS.

        Its post-auth hands the inner identity to the outer request's
        session-state so the outer post-auth (hold, discard, reply attributes)
        can key on the real user even behind an anonymous outer identity.
        """
        policy = _Policy(self._users)
        save_identity = ["update outer.session-state {", "\t&Tmp-String-4 := &User-Name", "}"]
        lines = [
            f"server {_INNER_SERVER} {{",
            "\tauthorize {",
            *_indent([*policy.inner_authorize(), "inner-eap {", "\tok = return", "}", "mschap", "pap"], 2),
            "\t}",
            "\tauthenticate {",
            *_indent(["Auth-Type inner-eap {", "\tinner-eap", "}", "Auth-Type MS-CHAP {", "\tmschap", "}",
                      "Auth-Type PAP {", "\tpap", "}"], 2),  # EAP-TTLS's inner PAP and MS-CHAPv2
            "\t}",
            "\tpost-auth {",
            *_indent(save_identity, 2),
            "\t\tPost-Auth-Type REJECT {",
            *_indent(save_identity, 3),
            "\t\t}",
            "\t}",
            "}",
        ]
        return "\n".join(lines) + "\n"
