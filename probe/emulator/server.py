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

Bounded (:mod:`probe.emulator.limits`, ``limits:`` in the config): half-open EAP
conversations (50,000, of them 1,000 with a live TLS connection), 30 s per round
and 120 s in all (then reason 96), the duplicate cache (100,000 entries), pending
OTP challenges (50,000, 120 s), MFA holds in flight (10,000), the event history
(10,000). A sweep every second (at most) forgets what aged, and gives memory
back to the system after forgetting many conversations.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import os
import time
from collections import deque
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any, TypeVar

from ..radius import packet as pk
from ..radius.dictionary import default_dictionary
from ..radius.profiles import encode_pairs
from ..suggest import did_you_mean
from .config import EmulatedUser, EmulatorConfig
from ..eap.packet import EapPacket
from . import password_methods
from .eap_server import EapServerSession, ServerTls, account_name, reply_attributes
from .limits import TRIM_AFTER, ConversationTable, EmulatorLimits, EmulatorStats, give_memory_back
from .nps_rules import Reason, reason_class

log = logging.getLogger("probe.emulator")

SESSION_TTL_S = math.inf
"""Kept for callers that shorten it (tests): when below ``limits.max_age_s`` it is used instead."""
EAP_TIMED_OUT = 96
OTP_STATE_KEEP_FACTOR = 4 / 3
"""An OTP challenge's State outlives its MFA session by a third (240 s for 180 s), then it is forgotten."""
"""NPS reason code: the EAP session timed out before it completed."""
TIMEOUT_EVENTS_PER_SWEEP = 10
"""A sweep that times out more conversations than this is a flood: they are counted, and one summary event
follows when it is over. So a flood neither pushes every other event out of the history nor leaves events
scattered through its memory (each would keep a 1 MiB pymalloc arena of the flood resident)."""


@dataclass(frozen=True, slots=True)
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
    no_otp: str | None = None  # the method that cannot carry the OTP round (EAP, MS-CHAPv2, CHAP): TOTP users fail


DEFAULT_RCVBUF = 32 * 1024 * 1024
"""Bytes of SO_RCVBUF (and SO_SNDBUF) asked for the emulator's socket: 10,000 requests at once fit."""
DROP_EVENTS = frozenset({13, 17, 18, 4401, 4402, 4405, 6274})
"""Events that mean a request was discarded without an answer (counted in ``dropped``)."""

PENDING = math.inf
"""A duplicate-cache entry for a request not answered yet (the value is: drop duplicates until then)."""


class NpsEmulator(asyncio.DatagramProtocol):
    """An NPS that behaves like production NPS with the MFA extension, on loopback."""

    def __init__(self, config: EmulatorConfig, *, eap_policy: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.limits: EmulatorLimits = config.limits
        self.clock = clock
        """Every age the emulator keeps is measured with this (tests pass their own)."""
        self.dictionary = default_dictionary()
        self.transport: asyncio.DatagramTransport | None = None
        self.events: deque[Event] = deque(maxlen=self.limits.events_history)
        self._seen: dict[tuple[Any, int, bytes], float] = {}  # request key -> drop duplicates until (PENDING)
        self._otp_states: dict[bytes, tuple[str, float]] = {}  # State -> (user awaiting an OTP, issued at)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._reply_attrs = {name: encode_pairs(u.reply, self.dictionary) for name, u in config.users.items()}
        self.requests = 0
        self.answered = 0  # replies sent (Accept, Reject, Challenge)
        self.dropped = 0  # requests discarded on purpose (the events in DROP_EVENTS)
        self.buffer_grant: Any = None  # the socket buffers the kernel granted (probe.load.kernel.BufferGrant)
        self.stats = EmulatorStats()
        # users the extension began MFA for (push, call, OTP), latest last: tests count pushes (capped like events)
        self.mfa_started: deque[str] = deque(maxlen=self.limits.events_history)
        if eap_policy is None and config.eap is not None:
            eap_policy = config.eap.policy()
        self._eap_policy = eap_policy
        self._server_tls = ServerTls(self._eap_policy, clock=clock) if self._eap_policy is not None else None
        self._eap_sessions: ConversationTable[EapServerSession] = ConversationTable(self.limits, self.stats)
        self._forgotten = 0  # conversations forgotten since memory was last given back
        self._untold_timeouts = 0  # a flood's timed-out conversations, told in one event once it is over

    # -- lifecycle -------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, reuse_port: bool = False,
                    rcvbuf: int | None = DEFAULT_RCVBUF) -> tuple[str, int]:
        """Listen on host:port (``reuse_port``: SO_REUSEPORT, for ``--workers``); a large receive buffer
        (``rcvbuf`` bytes, None: the system's) so a burst of requests is not dropped by the kernel."""
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port), reuse_port=reuse_port or None)
        assert self.transport is not None
        if rcvbuf is not None:
            from ..load.kernel import set_buffers

            self.buffer_grant = set_buffers(self.transport.get_extra_info("socket"), rcvbuf)
        self._sweeper = loop.call_later(self.limits.sweep_interval_s, self._sweep_tick)
        return self.transport.get_extra_info("sockname")[:2]

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[:2]

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._eap_sessions.clear()
        if self._untold_timeouts:
            self._tell_timeouts()
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
        ev = Event(event_id, reason, user, text, self.clock())
        if event_id in DROP_EVENTS:
            self.dropped += 1
        self.events.append(ev)
        log.info("event %d reason %s user %s: %s", event_id, reason, user, text)

    def events_for(self, user: str) -> list[Event]:
        return [e for e in self.events if e.user == user]

    # -- request handling ------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.requests += 1
        now = self.clock()
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
        if request.code == pk.STATUS_SERVER:  # NPS does not implement RFC 5997: silence, whatever the secret
            self._event(4406, None, None, "Status-Server discarded: NPS does not implement RFC 5997")
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
        until = self._seen.get(key)
        if until is not None and now < until:
            self._event(4401, None, None, f"duplicate of request {request.identifier} discarded")
            return
        self._seen.pop(key, None)
        self._seen[key] = PENDING
        self._expire(now)
        self._handle(request, addr, key)

    @property
    def _max_age_s(self) -> float:
        return min(self.limits.max_age_s, SESSION_TTL_S)

    @property
    def _otp_keep_s(self) -> float:
        """How long an OTP challenge's State is kept: past the MFA session's lifetime, so a late answer is
        told InvalidSession instead of being taken for a new request."""
        return max(self._max_age_s, self.config.otp_session_lifetime_s * OTP_STATE_KEEP_FACTOR)

    def _expire(self, now: float) -> None:
        """Forget answered requests past their duplicate window and aged OTP challenges, oldest first.

        Dicts keep insertion order and every state change re-inserts its key, so expired
        entries gather at the front and each request does O(1) work on average; the caps
        (max_duplicates, max_conversations) bound a flood.
        """
        _expire_table(self._seen, lambda until: until > now, self.limits.max_duplicates)
        _expire_table(self._otp_states, lambda e: now - e[1] <= self._otp_keep_s, self.limits.max_conversations)

    def sweep(self, now: float | None = None) -> int:
        """Forget what aged: stalled EAP conversations (event 6273, reason 96), duplicates, OTP challenges,
        fast-reconnect grants. After many conversations went, give memory back. Returns how many went."""
        now = self.clock() if now is None else now
        self._expire(now)
        gone = self._eap_sessions.expire(now)
        if len(gone) > TIMEOUT_EVENTS_PER_SWEEP or (gone and self._untold_timeouts):
            self._untold_timeouts += len(gone)
        elif self._untold_timeouts:
            self._tell_timeouts()
        else:
            for expired in gone:
                self._event(6273, EAP_TIMED_OUT, expired.session.best_identity,
                            f"access denied: EAP session timed out incomplete (no response for "
                            f"{expired.idle_s:.0f} s, round timeout {self.limits.round_timeout_s:g} s)")
        if self._server_tls is not None and self._server_tls.fast_reconnect is not None:
            self._server_tls.fast_reconnect.expire()
        self._forgotten += len(gone)
        if self._forgotten >= TRIM_AFTER and 4 * len(self._eap_sessions) < self._forgotten:  # a flood has ebbed
            self._forgotten = 0
            self._compact()
            give_memory_back()
            self.stats.trims += 1
        return len(gone)

    def _tell_timeouts(self) -> None:
        """The summary event of a flood's timed-out conversations."""
        self._event(6273, EAP_TIMED_OUT, None, f"access denied: {self._untold_timeouts} EAP sessions timed out "
                    f"incomplete (round timeout {self.limits.round_timeout_s:g} s); a flood, so not one by one")
        self._untold_timeouts = 0

    def _compact(self) -> None:
        """Dicts never shrink on delete: refill the tables a flood grew (cheap once they are mostly empty)."""
        _compact(self._seen)
        _compact(self._otp_states)
        self._eap_sessions.compact()

    def _sweep_tick(self) -> None:
        try:
            self.sweep()
        finally:
            if self.transport is not None and not self.transport.is_closing():
                loop = asyncio.get_running_loop()
                self._sweeper = loop.call_later(self.limits.sweep_interval_s, self._sweep_tick)

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
        if hidden is None and password_methods.handle(self, ans, name):  # RADIUS MS-CHAPv2 or CHAP
            return
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
            # the event says which (a real NPS logs the same reason 16 for both); the lab is for learning
            why = ("bad password" if user is not None
                   else f"unknown user {name!r}{did_you_mean(name, self.config.users)}")
            self._reject(ans, name, 16, f"authentication failed: {why}")
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
        now = self.clock()
        state = request.get(pk.STATE)
        entry = self._eap_sessions.take(state) if state is not None else None
        if entry is not None:
            session, started, last = entry
            if now - last > self.limits.round_timeout_s or now - started > self._max_age_s:
                self._timed_out(ans, session, eap, now - started, now - last)
                return
        else:
            session, started = EapServerSession(self._eap_policy, self._password_of, tls=self._server_tls), now
            self.stats.conversations += 1
        mtu_raw = request.get(12)
        mtu = int.from_bytes(mtu_raw, "big") if mtu_raw is not None and len(mtu_raw) == 4 else None
        step = session.handle(eap, mtu)
        self._on_eap_step(step, mtu)
        if step.kind == "challenge":
            new_state = os.urandom(16)
            self._eap_sessions.put(new_state, session, started, now)
            code, attrs = reply_attributes(step, state=new_state, secret=self.config.secret,
                                           request_authenticator=request.authenticator)
            self._send(ans, code, attrs)
            return
        ans.eap_session = session  # released once answered
        if step.kind == "failure":
            self._reject(ans, step.identity, step.reason or 22, step.text, eap_failure=step.eap)
            return
        account = account_name(step.identity or "")
        user = self.config.users.get(account)
        _, ans.accept_attrs = reply_attributes(step, state=None, secret=self.config.secret,
                                               request_authenticator=request.authenticator)
        ans.reject_attrs = pk.eap_message_attrs(step.failure_eap())
        ans.eap = True
        ans.no_otp = "EAP"
        if user is None:
            self._reject(ans, account, 16, "authenticated account is not known")
            return
        self._mfa(ans, user)

    def _timed_out(self, ans: _Answer, session: EapServerSession, eap: bytes, age_s: float, idle_s: float) -> None:
        """A response for a conversation past its round timeout or its age: NPS's reason 96."""
        ans.eap_session = session
        why = (f"no response for {idle_s:.0f} s (round timeout {self.limits.round_timeout_s:g} s)"
               if idle_s > self.limits.round_timeout_s else f"{age_s:.0f} s old (max age {self._max_age_s:g} s)")
        self._reject(ans, session.best_identity, EAP_TIMED_OUT, f"EAP session timed out incomplete: {why}",
                     eap_failure=EapPacket.failure(eap[1] if len(eap) > 1 else 0).to_bytes())
        self.stats.timed_out += 1

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
        if mfa not in no_mfa and not (mfa == "otp" and ans.no_otp):
            self.mfa_started.append(user.name)
        if mfa == "none":
            self._accept(ans, user, "no MFA for this user")
        elif mfa == "approve":
            if user.delay_s > 0 and len(self._tasks) >= self.limits.max_pending_holds:
                self.stats.holds_refused += 1
                self._event(6274, None, user.name, f"request discarded: {self.limits.max_pending_holds} MFA "
                            f"approvals already in flight (limits.max_pending_holds)")
                self._finish(ans)
                self._done(ans.key)
                return
            self._later(user.delay_s, self._accept, ans, user, f"MFA approved after {user.delay_s:g} s")
        elif mfa == "deny":
            self._later(user.delay_s, self._reject, ans, user.name, 21, "MFA denied by the user",
                        self.config.deny_message)
        elif mfa == "unanswered":
            self._later(user.delay_s, self._reject, ans, user.name, 21, "MFA push not answered: timed out [?]")
        elif mfa == "foreign_tenant":
            self._reject(ans, user.name, 21, "AccessDenied: Caller tenant doesn't have access permissions")
        elif mfa == "discard":
            self._event(6274, Reason.DISCARDED_BY_EXTENSION, user.name, "ESTS_TOKEN_ERROR: the extension could not "
                        "get a token: request discarded (AuthZ event 3)")
            self._revoke_fast_reconnect(ans)
            self._finish(ans)
            # Retransmissions of a discarded request are dropped too, for a bounded while.
            self._seen.pop(ans.key, None)
            self._seen[ans.key] = self.clock() + max(self._max_age_s, self.config.duplicate_hold_s)
        elif mfa == "otp" and ans.no_otp:
            self._reject(ans, user.name, 21, f"the user's MFA method is an OTP, which {ans.no_otp} cannot carry "
                         "(AuthZ: Challenge requested in Authentication Ext for User)")
        elif mfa == "otp":
            state = os.urandom(16)
            self._otp_states[state] = (user.name, self.clock())
            self._expire(self.clock())  # the cap holds with the new one
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
        name, issued = self._otp_states.pop(state)
        user = self.config.users[name]
        age = self.clock() - issued
        if age >= self.config.otp_session_lifetime_s:
            self._reject(ans, name, Reason.EXTENSION_REJECTED, f"InvalidSession: the OTP came {age:.0f} s after the "
                         f"challenge, the MFA session lives {self.config.otp_session_lifetime_s:g} s")
            return
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
        assert reason_class(reason) == "reject", f"reason {reason} is discard-class: event 6274, no Access-Reject"
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

    @staticmethod
    def _finish(ans: _Answer) -> None:
        """The final answer is out (or withheld): the conversation's TLS connections go now."""
        if ans.eap_session is not None:
            ans.eap_session.release()

    def _done(self, key: tuple[Any, int, bytes]) -> None:
        self._seen.pop(key, None)  # re-insert: the expiry order follows the answer time
        self._seen[key] = self.clock() + self.config.duplicate_hold_s

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
            self.answered += 1
        if code != pk.ACCESS_CHALLENGE:
            self._finish(ans)
        self._done(ans.key)


async def serve(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 1812) -> NpsEmulator:
    emulator = NpsEmulator(config)
    await emulator.start(host, port)
    return emulator


_K = TypeVar("_K")
_T = TypeVar("_T")


def _compact(table: dict[_K, _T]) -> None:
    """Shrink a dict's storage to its entries, in place (a new dict object would pin a flood's memory arena)."""
    copy = dict(table)
    table.clear()
    table.update(copy)


def _expire_table(table: dict[_K, _T], alive: Callable[[_T], bool], cap: int) -> None:
    """Drop the oldest entries while they are dead or the table is over ``cap``."""
    while table:
        oldest = next(iter(table))
        if alive(table[oldest]) and len(table) <= cap:
            break
        del table[oldest]
