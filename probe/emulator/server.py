"""The NPS + Entra MFA extension emulator, RADIUS level (asyncio UDP server).

What it reproduces, in NPS's order of checks:
1. a request from an address that is not a RADIUS client is dropped (event 13);
2. a wrong or missing-but-required Message-Authenticator is dropped (events 18, 17);
   so is anything signed with another secret;
3. duplicates (same source, Identifier and Request Authenticator) are dropped while
   the request is pending and for ``duplicate_hold_s`` after it was answered;
4. NPS checks the first factor: unknown user or wrong password -> Access-Reject
   (event 6273, reason 16);
5. the MFA extension acts only on a request NPS would accept, per user behaviour
   (see config.py); holds are asynchronous, other requests go on meanwhile.
EAP (EAP-TLS, PEAP-MSCHAPv2, PEAP-TLS) runs through eap_server.py's sessions,
keyed on State; the MFA behaviours act only when the EAP method has succeeded,
on the final round, as the extension does. Every decision is kept as an
NPS-style event (id, reason, user, text).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any, TypeVar

from ..radius import packet as pk
from ..radius.dictionary import default_dictionary
from ..radius.profiles import encode_pairs
from .config import EmulatedUser, EmulatorConfig
from .eap_server import EapServerSession, ServerTls, account_name, reply_attributes

log = logging.getLogger("probe.emulator")

SESSION_TTL_S = 120.0  # EAP conversations, OTP challenges and discarded requests are forgotten after this
MAX_TRACKED = 100_000  # hard cap per table: a flood of new conversations cannot grow memory without bound


@dataclass(frozen=True)
class Event:
    """One NPS-style log entry."""

    event_id: int
    reason: int | None
    user: str | None
    text: str
    at: float

    def as_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "reason": self.reason, "user": self.user, "text": self.text}


@dataclass
class _Answer:
    """Where a reply goes, and what the authentication method adds to Accept and Reject."""

    request: pk.Packet
    addr: Any
    key: tuple[Any, int, bytes]
    accept_attrs: list[pk.Attr] = field(default_factory=list)  # EAP-Success, MS-MPPE keys
    reject_attrs: list[pk.Attr] = field(default_factory=list)  # EAP-Failure
    eap: bool = False
    eap_session: EapServerSession | None = None  # a successful EAP conversation awaiting NPS/MFA's verdict


@dataclass
class _Seen:
    pending: bool
    until: float  # drop duplicates until this time once answered


class NpsEmulator(asyncio.DatagramProtocol):
    """An NPS that behaves like production NPS with the MFA extension, on loopback."""

    def __init__(self, config: EmulatorConfig, *, eap_policy: Any = None) -> None:
        self.config = config
        self.dictionary = default_dictionary()
        self.transport: asyncio.DatagramTransport | None = None
        self.events: deque[Event] = deque(maxlen=10000)
        self._seen: dict[tuple[Any, int, bytes], _Seen] = {}
        self._otp_states: dict[bytes, tuple[str, float]] = {}  # State -> (user awaiting an OTP, issued at)
        self._tasks: set[asyncio.Task[None]] = set()
        self._reply_attrs = {name: encode_pairs(u.reply, self.dictionary) for name, u in config.users.items()}
        self.requests = 0
        self.mfa_started: list[str] = []  # users the extension began MFA for (push, call, OTP): tests count pushes
        if eap_policy is None and config.eap is not None:
            eap_policy = config.eap.policy()
        self._eap_policy = eap_policy
        self._server_tls = ServerTls(self._eap_policy) if self._eap_policy is not None else None
        self._eap_sessions: dict[bytes, tuple[EapServerSession, float]] = {}

    # -- lifecycle -------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[:2]

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[:2]

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint gets a DatagramTransport

    # -- events ----------------------------------------------------------------

    def _event(self, event_id: int, reason: int | None, user: str | None, text: str) -> None:
        ev = Event(event_id, reason, user, text, time.monotonic())
        self.events.append(ev)
        log.info("event %d reason %s user %s: %s", event_id, reason, user, text)

    def events_for(self, user: str) -> list[Event]:
        return [e for e in self.events if e.user == user]

    # -- request handling ------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.requests += 1
        now = time.monotonic()
        try:
            source = ipaddress.ip_address(addr[0])
        except ValueError:
            return
        if not any(source in net for net in self.config.clients):
            self._event(13, None, None, f"request from {addr[0]}, which is not a RADIUS client: discarded")
            return
        try:
            request = pk.parse_packet(data)
        except pk.PacketError as exc:
            self._event(4405, None, None, f"malformed request discarded: {exc.detail}")
            return
        if request.code != pk.ACCESS_REQUEST:
            return
        ma = pk.request_message_authenticator(request, self.config.secret)
        if ma == "invalid":
            self._event(18, None, None, "Message-Authenticator invalid (wrong shared secret?): discarded")
            return
        if ma == "absent" and self.config.require_message_authenticator:
            self._event(17, None, None, "Message-Authenticator required but absent: discarded")
            return
        key = (addr, request.identifier, request.authenticator)
        seen = self._seen.get(key)
        if seen is not None and (seen.pending or now < seen.until):
            self._event(4401, None, None, f"duplicate of request {request.identifier} discarded")
            return
        self._expire(now)
        self._seen.pop(key, None)
        self._seen[key] = _Seen(True, 0.0)
        self._handle(request, addr, key)

    def _expire(self, now: float) -> None:
        """Forget answered requests past their duplicate window, oldest first; a hard cap bounds a flood.

        Dicts keep insertion order and every state change re-inserts its key, so expired
        entries gather at the front and each request does O(1) work on average.
        """
        _expire_table(self._seen, lambda s: s.pending or s.until > now)
        _expire_table(self._eap_sessions, lambda e: now - e[1] <= SESSION_TTL_S)
        _expire_table(self._otp_states, lambda e: now - e[1] <= SESSION_TTL_S)

    def _handle(self, request: pk.Packet, addr: Any, key: tuple[Any, int, bytes]) -> None:
        ans = _Answer(request, addr, key)
        name_raw = request.get(pk.USER_NAME)
        if name_raw is None:
            self._event(6274, None, None, "REQUEST_FORMAT_ERROR: no User-Name: discarded")
            self._done(key)
            return
        eap = request.eap()
        if eap is not None:
            self._handle_eap(ans, eap)
            return
        name = name_raw.decode("utf-8", "replace")
        hidden = request.get(pk.USER_PASSWORD)
        if hidden is None:
            self._reject(ans, name, 16, "no supported credentials (neither PAP nor EAP)")
            return
        try:
            password = pk.decrypt_user_password(hidden, self.config.secret, request.authenticator)
        except pk.PacketError:
            self._reject(ans, name, 16, "User-Password cannot be decrypted")
            return
        user = self.config.users.get(name)
        state = request.get(pk.STATE)
        if state is not None and state in self._otp_states and self._otp_states[state][0] == name:
            self._otp_answer(ans, state, password)
            return
        if user is None or password != user.password.encode():
            self._reject(ans, name, 16, "authentication failed: unknown user or bad password")
            return
        self._mfa(ans, user)

    # -- EAP ---------------------------------------------------------------------

    def _handle_eap(self, ans: _Answer, eap: bytes) -> None:
        request = ans.request
        if self._eap_policy is None:
            self._reject(ans, None, 22, "EAP is not enabled on this server (no certificates configured)",
                         eap_failure=bytes((4, eap[1] if len(eap) > 1 else 0, 0, 4)))
            return
        if pk.request_message_authenticator(request, self.config.secret) != "valid":
            self._event(17, None, None, "EAP request without Message-Authenticator: discarded")
            self._done(ans.key)
            return
        now = time.monotonic()
        state = request.get(pk.STATE)
        entry = self._eap_sessions.pop(state, None) if state is not None else None
        if entry is not None and now - entry[1] > SESSION_TTL_S:
            entry = None  # an abandoned conversation: start over
        session = entry[0] if entry is not None else EapServerSession(
            self._eap_policy, self._password_of, tls=self._server_tls)
        mtu_raw = request.get(12)
        mtu = int.from_bytes(mtu_raw, "big") if mtu_raw is not None and len(mtu_raw) == 4 else None
        step = session.handle(eap, mtu)
        self._on_eap_step(step, mtu)
        if step.kind == "challenge":
            new_state = os.urandom(16)
            self._eap_sessions[new_state] = (session, now)
            code, attrs = reply_attributes(step, state=new_state, secret=self.config.secret,
                                           request_authenticator=request.authenticator)
            self._send(ans, code, attrs)
            return
        if step.kind == "failure":
            self._reject(ans, step.identity, step.reason or 22, step.text, eap_failure=step.eap)
            return
        account = account_name(step.identity or "")
        user = self.config.users.get(account)
        _, ans.accept_attrs = reply_attributes(step, state=None, secret=self.config.secret,
                                               request_authenticator=request.authenticator)
        ans.reject_attrs = pk.eap_message_attrs(step.failure_eap())
        ans.eap = True
        ans.eap_session = session
        if user is None:
            self._reject(ans, account, 16, "authenticated account is not known")
            return
        self._mfa(ans, user)

    def _on_eap_step(self, step: Any, framed_mtu: int | None) -> None:
        """A hook for tests and tracing: every EAP step the server takes."""

    def _password_of(self, account: str) -> str | None:
        user = self.config.users.get(account)
        return user.password if user is not None else None

    # -- the MFA extension -------------------------------------------------------

    def _mfa(self, ans: _Answer, user: EmulatedUser) -> None:
        """The extension's part: only on a request NPS accepted (the final one)."""
        nas_ip = ans.request.get(4)
        if nas_ip is not None and len(nas_ip) == 4 and str(ipaddress.IPv4Address(nas_ip)) in self.config.ip_whitelist:
            self._accept(ans, user, "NAS-IP-Address in IP_WHITELIST: MFA skipped")
            return
        if nas_ip is None and self.config.ip_whitelist:
            self._event(4, None, user.name, "IP_WHITE_LIST_WARNING: no NAS-IP-Address, IP_WHITELIST not applied")
        mfa = user.mfa
        no_mfa = ("none", "not_enrolled", "not_found", "foreign_tenant", "discard")
        if mfa not in no_mfa and not (mfa == "otp" and ans.eap):
            self.mfa_started.append(user.name)
        if mfa == "none":
            self._accept(ans, user, "no MFA for this user")
        elif mfa == "approve":
            self._later(user.delay_s, self._accept, ans, user, f"MFA approved after {user.delay_s:g} s")
        elif mfa == "deny":
            self._later(user.delay_s, self._reject, ans, user.name, 21, "MFA denied by the user",
                        self.config.deny_message)
        elif mfa == "unanswered":
            self._later(user.delay_s, self._reject, ans, user.name, 21, "MFA push not answered: timed out [?]")
        elif mfa == "foreign_tenant":
            self._reject(ans, user.name, 21, "AccessDenied: Caller tenant doesn't have access permissions")
        elif mfa == "discard":
            self._event(6274, None, user.name, "ESTS_TOKEN_ERROR: the extension could not get a token: "
                        "request discarded (AuthZ event 3)")
            self._revoke_fast_reconnect(ans)
            # Retransmissions of a discarded request are dropped too, for a bounded while.
            self._seen.pop(ans.key, None)
            self._seen[ans.key] = _Seen(False, time.monotonic() + max(SESSION_TTL_S, self.config.duplicate_hold_s))
        elif mfa == "otp" and ans.eap:
            self._reject(ans, user.name, 21, "the user's MFA method is an OTP, which EAP cannot carry")
        elif mfa == "otp":
            state = os.urandom(16)
            self._otp_states[state] = (user.name, time.monotonic())
            self._event(6276, None, user.name, "OTP requested: Access-Challenge")
            attrs = [(pk.STATE, state), (pk.REPLY_MESSAGE, self.config.otp_prompt.encode())]
            self._send(ans, pk.ACCESS_CHALLENGE, attrs)
        elif mfa == "not_found":
            self._reject(ans, user.name, 21, "user not found in Entra ID")
        elif mfa == "not_enrolled":
            if self.config.require_user_match:
                self._reject(ans, user.name, 21, "user not enrolled for MFA (REQUIRE_USER_MATCH true)")
            else:
                self._accept(ans, user, "user not enrolled; REQUIRE_USER_MATCH false: accepted without MFA")

    def _otp_answer(self, ans: _Answer, state: bytes, code: bytes) -> None:
        name, _ = self._otp_states.pop(state)
        user = self.config.users[name]
        if user.otp_code is not None and code == user.otp_code.encode():
            self._later(user.delay_s, self._accept, ans, user, "OTP verified")
        else:
            self._reject(ans, name, 21, "OTP verification failed")

    def _later(self, delay: float, fn: Any, *args: Any) -> None:
        if delay <= 0:
            fn(*args)
            return

        async def hold() -> None:
            await asyncio.sleep(delay)
            fn(*args)

        task = asyncio.get_running_loop().create_task(hold())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _accept(self, ans: _Answer, user: EmulatedUser, text: str) -> None:
        self._event(6272, None, user.name, f"access granted: {text}")
        self._send(ans, pk.ACCESS_ACCEPT, ans.accept_attrs + list(self._reply_attrs.get(user.name, [])))

    def _reject(self, ans: _Answer, name: str | None, reason: int, text: str, message: str | None = None,
                eap_failure: bytes | None = None) -> None:
        self._event(6273, reason, name, f"access denied: {text}")
        self._revoke_fast_reconnect(ans)
        attrs = pk.eap_message_attrs(eap_failure) if eap_failure is not None else list(ans.reject_attrs)
        if message:
            attrs.append((pk.REPLY_MESSAGE, message.encode()))
        self._send(ans, pk.ACCESS_REJECT, attrs)

    @staticmethod
    def _revoke_fast_reconnect(ans: _Answer) -> None:
        """A rejected or discarded EAP success was no successful authentication: its TLS session must not resume."""
        if ans.eap_session is not None:
            ans.eap_session.revoke_fast_reconnect()

    def _done(self, key: tuple[Any, int, bytes]) -> None:
        self._seen.pop(key, None)  # re-insert: the expiry order follows the answer time
        self._seen[key] = _Seen(False, time.monotonic() + self.config.duplicate_hold_s)

    def _send(self, ans: _Answer, code: int, attrs: list[pk.Attr]) -> None:
        sign = self.config.sign_replies == "always" or (
            self.config.sign_replies == "auto" and any(t == pk.EAP_MESSAGE for t, _ in attrs)
        )
        data = pk.build_reply(code, ans.request, attrs, self.config.secret, message_authenticator=sign)
        if self.config.max_reply_size is not None and len(data) > self.config.max_reply_size:
            self._event(4402, None, None, f"reply of {len(data)} bytes lost on the path (max_reply_size "
                        f"{self.config.max_reply_size}: dropped fragments)")
            self._done(ans.key)
            return
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, ans.addr)
        self._done(ans.key)


async def serve(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 1812) -> NpsEmulator:
    emulator = NpsEmulator(config)
    await emulator.start(host, port)
    return emulator


_K = TypeVar("_K")
_T = TypeVar("_T")


def _expire_table(table: dict[_K, _T], alive: Callable[[_T], bool]) -> None:
    """Drop the oldest entries while they are dead or the table is over MAX_TRACKED."""
    while table:
        oldest = next(iter(table))
        if alive(table[oldest]) and len(table) <= MAX_TRACKED:
            break
        del table[oldest]
