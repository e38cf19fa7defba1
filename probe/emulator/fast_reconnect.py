"""The emulator's fast-reconnect table: which resumed TLS sessions may skip authentication, for whom.

TLS session resumption (NPS "fast reconnect", ``EapServerPolicy.fast_reconnect``)
re-runs no credential check: a resumed EAP-TLS handshake carries no
certificate, a resumed PEAP tunnel skips the inner method. So the account must
be remembered with the session, and only a session whose authentication
succeeded may be resumed. :class:`FastReconnectCache` keeps that table; the
outer session (:mod:`probe.emulator.eap_server`) asks it on a resumed
handshake and grants or revokes at the end of every conversation.

Bounds (configured as ``eap: fast_reconnect_sessions`` and
``eap: fast_reconnect_lifetime``): at most ``max_sessions`` grants
(default 20,480, 1..1,000,000), the oldest dropped first, each forgotten
``lifetime_s`` seconds after it was granted (default 600 s, 1..86,400; the
same value is OpenSSL's session-cache timeout). A grant costs about 300
bytes. OpenSSL's own server cache keeps at most 20,480 sessions (its
default, which pyOpenSSL cannot change) and flushes expired ones itself
every 255 handshakes; a session it still holds without a grant resumes
as no fast reconnect (PEAP runs phase 2, EAP-TLS fails with reason 22).
"""

from __future__ import annotations

import hashlib
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from OpenSSL import SSL

from probe.eap.packet import EapType
from probe.eap.tls import TlsEngine

__all__ = [
    "DEFAULT_FAST_RECONNECT_LIFETIME_S",
    "DEFAULT_FAST_RECONNECT_SESSIONS",
    "MAX_FAST_RECONNECT_LIFETIME_S",
    "MAX_FAST_RECONNECT_SESSIONS",
    "FastReconnectCache",
    "FastReconnectGrant",
    "FastReconnectStats",
]

DEFAULT_FAST_RECONNECT_LIFETIME_S = 600
"""Ten minutes: long enough for a probe's or a client's reconnect, short enough for tests and demos."""
DEFAULT_FAST_RECONNECT_SESSIONS = 20480
"""OpenSSL's own default server session cache size (SSL_SESSION_CACHE_MAX_SIZE_DEFAULT)."""
MAX_FAST_RECONNECT_LIFETIME_S = 86_400
"""A day: the longest lifetime a configuration may ask for."""
MAX_FAST_RECONNECT_SESSIONS = 1_000_000
"""The most grants a configuration may ask for (about 300 MB of grants)."""


@dataclass(frozen=True)
class FastReconnectGrant:
    """Who authenticated on a TLS session, and how: what a fast reconnect on it stands for.

    ``outer`` (and PEAP's ``inner``) EAP type: a session is only resumed by
    the outer method that made it; PEAP's fast reconnect stands for its inner method.
    """

    outer: EapType
    inner: EapType | None
    account: str


@dataclass
class FastReconnectStats:
    """Counters for logs and tests."""

    granted: int = 0
    """Successful conversations whose session became (or stayed) resumable."""
    resumed: int = 0
    """Successes by fast reconnect: resumed TLS, no credential checked again."""
    refused: int = 0
    """Resumed TLS sessions that got no fast reconnect (no grant, or the peer declined it)."""
    revoked: int = 0
    """Failed conversations whose session was made unresumable."""


_JUNK_RECORD = b"\x17\x03\x03\x00\x20" + bytes(32)
"""A TLS application-data record no key decrypts. Fed to a connection, it makes OpenSSL
send a fatal bad_record_mac alert, and sending a fatal alert removes the connection's
session from the server cache (ssl3_send_alert). pyOpenSSL has no SSL_CTX_remove_session."""


_OBSERVED_STEPS = (SSL.SSL_CB_ACCEPT_LOOP, SSL.SSL_CB_HANDSHAKE_DONE)
"""Info callback events after which a server connection's session is worth a fingerprint."""


@dataclass
class _Observed:
    """The sessions one server connection has held, by fingerprint, and the connection itself."""

    fingerprints: list[bytes]
    connection: weakref.ref[SSL.Connection]


class FastReconnectCache:
    """Which cached TLS sessions may skip authentication, and for which account.

    OpenSSL's server cache decides whether a handshake resumes; this table
    decides whether the resumption counts. Sessions are known by the SHA-256
    of their master secret (TLS 1.2: shared by the original and every
    resumed handshake) or resumption PSK (TLS 1.3: one per ticket), which
    :meth:`observe`, the contexts' info callback, records for every session a
    connection holds during its handshake. Sessions are stateful (no
    stateless tickets), so evicting one from the cache really revokes it.
    The table holds at most ``max_sessions`` fingerprints, oldest dropped first,
    and forgets a grant ``lifetime_s`` after it was given (``clock`` tells the
    time, time.monotonic by default; OpenSSL's session cache expires its sessions at the same age).
    """

    def __init__(self, max_sessions: int = DEFAULT_FAST_RECONNECT_SESSIONS,
                 lifetime_s: float = DEFAULT_FAST_RECONNECT_LIFETIME_S, *,
                 clock: Callable[[], float] | None = None) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be positive")
        if lifetime_s <= 0:
            raise ValueError("lifetime_s must be positive")
        self.max_sessions = max_sessions
        self.lifetime_s = lifetime_s
        self.clock = clock or time.monotonic
        self.stats = FastReconnectStats()
        self._grants: dict[bytes, tuple[FastReconnectGrant, float]] = {}  # fingerprint -> (grant, granted at)
        self._observed: weakref.WeakKeyDictionary[TlsEngine, _Observed] = weakref.WeakKeyDictionary()

    def observe(self, conn: SSL.Connection, where: int, ret: int) -> None:
        """Info callback: fingerprint the session the connection holds now (called by OpenSSL, must not raise).

        Only after a step that went well: reading a key that is not there yet
        drains OpenSSL's error queue, which during an alert or a failed step
        still holds the reason the handshake reports.
        """
        engine = conn.get_app_data()
        if where not in _OBSERVED_STEPS or not isinstance(engine, TlsEngine):
            return
        try:
            key = conn.master_key()
        except SSL.Error:  # no session, or one without a key yet (pyOpenSSL asserts a non-empty key)
            return
        if not key:
            return
        seen = self._observed.get(engine)
        if seen is None:
            seen = self._observed[engine] = _Observed([], weakref.ref(conn))
        fingerprint = hashlib.sha256(key).digest()
        if fingerprint not in seen.fingerprints:
            seen.fingerprints.append(fingerprint)

    def grant_for(self, engine: TlsEngine) -> FastReconnectGrant | None:
        """The grant of the session a resumed handshake used, if it has one."""
        seen = self._observed.get(engine)
        if seen is None or not engine.session_reused:
            return None
        self.expire()
        return next((self._grants[f][0] for f in seen.fingerprints if f in self._grants), None)

    def __len__(self) -> int:
        """Grants held (fingerprints: TLS 1.3 grants two per handshake)."""
        return len(self._grants)

    def expire(self) -> int:
        """Forget grants older than the lifetime (oldest first); how many went."""
        oldest_allowed = self.clock() - self.lifetime_s
        gone = 0
        while self._grants:
            first = next(iter(self._grants))
            if self._grants[first][1] >= oldest_allowed:
                break
            del self._grants[first]
            gone += 1
        return gone

    def grant(self, engine: TlsEngine, grant: FastReconnectGrant) -> None:
        """After a successful authentication: the sessions of this handshake may be resumed for ``grant``."""
        seen = self._observed.get(engine)
        if seen is None:
            return
        now = self.clock()
        for fingerprint in seen.fingerprints:
            self._grants.pop(fingerprint, None)
            self._grants[fingerprint] = (grant, now)
        self.expire()
        while len(self._grants) > self.max_sessions:
            self._grants.pop(next(iter(self._grants)))
        self.stats.granted += 1

    def revoke(self, engine: TlsEngine) -> None:
        """After a failure: forget every grant of this handshake's sessions and evict its session from the cache."""
        seen = self._observed.pop(engine, None)
        if seen is None:
            return
        for fingerprint in seen.fingerprints:
            self._grants.pop(fingerprint, None)
        conn = seen.connection()
        if conn is not None:
            _evict_session(conn)
        self.stats.revoked += 1


def _evict_session(conn: SSL.Connection) -> None:
    """Make OpenSSL drop the connection's session from the server cache (see _JUNK_RECORD)."""
    conn.set_shutdown(0)  # a connection marked shut down reads nothing, so it would send no alert
    conn.bio_write(_JUNK_RECORD)
    try:
        conn.recv(1)
    except SSL.Error:
        pass
    while True:  # the alert is never sent: EAP has no place for it once the conversation is over
        try:
            conn.bio_read(16384)
        except SSL.Error:
            return
