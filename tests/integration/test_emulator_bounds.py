"""The emulator's bounds (probe/emulator/limits.py): caps, per-round idle timeout, max age, lazy TLS.

The emulator runs in this process with an injected clock; datagrams go straight into
``datagram_received`` and its replies are read off a capturing transport, so every age is
exact and no test sleeps. The valid client is the probe's own EAP peer (PEAP-MSCHAPv2).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from probe.credentials import load_trust
from probe.eap.packet import EapType
from probe.eap.peer import EapPeer, PeerConfig
from probe.emulator.config import (DEFAULT_PASSWORD, DEFAULT_SECRET, EapSettings, EmulatorConfigError,
                                   config_from_dict, default_config)
from probe.emulator.eap_server import EapServerPolicy, EapServerSession, ServerTls
from probe.emulator.limits import EmulatorLimits
from probe.emulator.server import NpsEmulator
from probe.pki import Pki
from probe.radius import packet as pk

SECRET = DEFAULT_SECRET.encode()
CLIENT = ("127.0.0.1", 40000)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Capture:
    """The emulator's transport: keeps what it sends."""

    sent: list[bytes] = field(default_factory=list)

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append(data)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def emulator(pki: Pki, clock: Clock, **limits: Any) -> NpsEmulator:
    config = default_config()
    config.eap = EapSettings.from_pki(pki.directory)
    config.limits = EmulatorLimits(**limits)
    em = NpsEmulator(config, clock=clock)
    em.transport = Capture()  # type: ignore[assignment]
    return em


def exchange(em: NpsEmulator, eap: bytes, state: bytes | None = None, *, user: bytes = b"anonymous",
             addr: Any = CLIENT) -> pk.Packet | None:
    """One Access-Request carrying ``eap``; the reply, or None when the emulator stayed silent."""
    attrs: list[pk.Attr] = [(pk.USER_NAME, user), *pk.eap_message_attrs(eap)]
    if state is not None:
        attrs.append((pk.STATE, state))
    request = pk.build_request(os.urandom(1)[0], os.urandom(16), attrs, SECRET)
    sent = em.transport.sent  # type: ignore[union-attr]
    before = len(sent)
    em.datagram_received(request.raw, addr)
    return pk.parse_packet(sent[-1]) if len(sent) > before else None


def identity(ident: int = 1, name: bytes = b"anonymous") -> bytes:
    return bytes((2, ident, 0, 5 + len(name), 1)) + name


def client_hello() -> bytes:
    """A ClientHello as PEAP Type-Data (L flag, length), from a throwaway TLS 1.2 client."""
    from OpenSSL import SSL

    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
    conn = SSL.Connection(ctx, None)
    conn.set_connect_state()
    try:
        conn.do_handshake()
    except SSL.WantReadError:
        pass
    hello = conn.bio_read(65536)
    return b"\x80" + len(hello).to_bytes(4, "big") + hello


HELLO = client_hello()


def half_open_hello(em: NpsEmulator, n: int) -> pk.Packet:
    """Identity, then a ClientHello for the PEAP Start, then silence (a ClientHello flood's conversation)."""
    start = exchange(em, identity(), user=b"flood%d" % n)
    assert start is not None and start.code == pk.ACCESS_CHALLENGE
    eap = start.eap()
    assert eap is not None and eap[4] == EapType.PEAP
    body = bytes((EapType.PEAP,)) + HELLO
    reply = exchange(em, bytes((2, eap[1])) + (4 + len(body)).to_bytes(2, "big") + body, start.get(pk.STATE),
                     user=b"flood%d" % n)
    assert reply is not None and reply.code == pk.ACCESS_CHALLENGE
    return reply


def peap_peer(pki: Pki) -> EapPeer:
    return EapPeer(PeerConfig(outer=EapType.PEAP, inner=EapType.MSCHAPV2, identity="alice",
                              password=DEFAULT_PASSWORD.encode(), credentials=None, trust=load_trust(pki.ca),
                              method_name="peap-mschapv2", server_name="nps.lab.test",
                              tls_max="1.2"))  # type: ignore[arg-type]


class RealClient:
    """The probe's PEAP-MSCHAPv2 peer, one RADIUS round at a time."""

    def __init__(self, em: NpsEmulator, pki: Pki) -> None:
        self.em = em
        self.peer = peap_peer(pki)
        self.state: bytes | None = None
        self.next: bytes | None = self.peer.start()
        self.reply: pk.Packet | None = None

    def round(self) -> pk.Packet:
        assert self.next is not None
        reply = exchange(self.em, self.next, self.state, user=b"alice", addr=("127.0.0.1", 40001))
        assert reply is not None
        self.reply, self.state = reply, reply.get(pk.STATE)
        eap = reply.eap()
        if reply.code == pk.ACCESS_CHALLENGE and eap is not None:
            self.next = self.peer.receive(eap).reply
        else:
            self.next = None
        return reply

    def session(self) -> EapServerSession:
        entry = self.em._eap_sessions.take(self.state) if self.state else None
        assert entry is not None
        session, started, last = entry
        self.em._eap_sessions.put(self.state, session, started, last)  # type: ignore[arg-type]
        return session

    def finish(self) -> pk.Packet:
        for _ in range(100):
            reply = self.round()
            if reply.code != pk.ACCESS_CHALLENGE:
                return reply
        raise AssertionError("the conversation did not end")


# --------------------------------------------------------------------------- lazy TLS, cheap state


def test_no_openssl_connection_before_the_first_tls_data(lab_pki: Pki) -> None:
    """Identity-only conversations (and those that got the PEAP Start) hold no OpenSSL connection."""
    em = emulator(lab_pki, Clock())
    start = exchange(em, identity())
    assert start is not None and start.code == pk.ACCESS_CHALLENGE
    (session,) = em._eap_sessions.sessions()
    assert not session.tls_live and em._eap_sessions.tls_count == 0
    reply = half_open_hello(em, 1)
    assert reply.code == pk.ACCESS_CHALLENGE
    assert em._eap_sessions.tls_count == 1 and sum(s.tls_live for s in em._eap_sessions.sessions()) == 1


# --------------------------------------------------------------------------- caps


def test_conversation_cap_drops_the_least_recently_active(lab_pki: Pki) -> None:
    em = emulator(lab_pki, Clock(), max_conversations=20, max_tls_conversations=5)
    starts = [exchange(em, identity(), user=b"user%d" % i) for i in range(30)]
    assert len(em._eap_sessions) == 20 and em.stats.evicted == 10
    assert all(s is not None and s.get(pk.STATE) in em._eap_sessions for s in starts[10:])
    assert not any(s is not None and s.get(pk.STATE) in em._eap_sessions for s in starts[:10])


def test_tls_cap_evicts_clienthello_floods_and_spares_a_client_mid_handshake(lab_pki: Pki) -> None:
    """Fill the TLS cap with ClientHello-only conversations while a real client is mid-handshake."""
    em = emulator(lab_pki, Clock(), max_tls_conversations=10)
    client = RealClient(em, lab_pki)
    client.round()
    while client.session().tls_first_flight:  # identity, Start, ClientHello, server flight ACKs, second flight
        client.round()
    assert client.session().tls_live
    for n in range(50):
        half_open_hello(em, n)
        assert em._eap_sessions.tls_count <= 10
    assert em.stats.evicted_tls == 41  # 50 ClientHellos + the client, 10 kept
    final = client.finish()
    assert final.code == pk.ACCESS_ACCEPT
    assert [(e.event_id, e.user) for e in em.events if e.user == "alice"] == [(6272, "alice")]
    assert exchange(em, identity()) is not None  # and the emulator goes on


def test_a_finished_conversation_lets_go_of_its_tls_connection(lab_pki: Pki) -> None:
    em = emulator(lab_pki, Clock())
    client = RealClient(em, lab_pki)
    assert client.finish().code == pk.ACCESS_ACCEPT
    assert len(em._eap_sessions) == 0 and em._eap_sessions.tls_count == 0


# --------------------------------------------------------------------------- ages


def test_a_stalled_conversation_times_out_with_reason_96(lab_pki: Pki) -> None:
    clock = Clock()
    em = emulator(lab_pki, clock, round_timeout_s=5, max_age_s=20)
    start = exchange(em, identity(name=b"bob"), user=b"bob")
    half_open_hello(em, 1)
    assert start is not None and len(em._eap_sessions) == 2
    clock.now += 4
    assert em.sweep() == 0 and len(em._eap_sessions) == 2  # not yet
    clock.now += 2
    assert em.sweep() == 2 and len(em._eap_sessions) == 0 and em._eap_sessions.tls_count == 0
    timed_out = [(e.event_id, e.reason, e.user) for e in em.events if e.reason == 96]
    assert sorted(timed_out, key=str) == sorted([(6273, 96, "bob"), (6273, 96, "anonymous")], key=str)
    eap = start.eap()
    assert eap is not None
    late = exchange(em, bytes((2, eap[1], 0, 6, 3, 25)), start.get(pk.STATE), user=b"bob")  # Nak, too late
    assert late is not None and late.code == pk.ACCESS_REJECT


def test_a_response_after_the_round_timeout_is_refused_even_before_a_sweep(lab_pki: Pki) -> None:
    clock = Clock()
    em = emulator(lab_pki, clock, round_timeout_s=5, max_age_s=20)
    client = RealClient(em, lab_pki)
    client.round()
    clock.now += 6
    reply = client.round()
    assert reply.code == pk.ACCESS_REJECT
    assert (em.events[-1].event_id, em.events[-1].reason) == (6273, 96)


def test_a_conversation_past_its_max_age_is_refused_however_busy(lab_pki: Pki) -> None:
    clock = Clock()
    em = emulator(lab_pki, clock, round_timeout_s=5, max_age_s=10)
    client = RealClient(em, lab_pki)
    replies = []
    for _ in range(4):  # every round answered within the round timeout
        replies.append(client.round().code)
        clock.now += 4
    assert replies[:3] == [pk.ACCESS_CHALLENGE] * 3 and replies[3] == pk.ACCESS_REJECT
    assert (em.events[-1].event_id, em.events[-1].reason) == (6273, 96) and "max age" in em.events[-1].text


def test_a_flood_of_timeouts_is_told_in_one_event(lab_pki: Pki) -> None:
    clock = Clock()
    em = emulator(lab_pki, clock, round_timeout_s=5, max_age_s=20)
    for i in range(300):
        exchange(em, identity(), user=b"flood%d" % i)
    clock.now += 6
    assert em.sweep() == 300
    clock.now += 1
    em.sweep()  # the flood is over: one event says how many
    assert [(e.event_id, e.reason) for e in em.events] == [(6273, 96)] and "300 EAP sessions" in em.events[0].text


# --------------------------------------------------------------------------- the other tables


def pap_request(user: str, password: str = DEFAULT_PASSWORD) -> bytes:
    authenticator = os.urandom(16)
    attrs = [(pk.USER_NAME, user.encode()), pk.password_attr(password.encode(), SECRET, authenticator)]
    return pk.build_request(os.urandom(1)[0], authenticator, attrs, SECRET).raw


def test_duplicate_cache_and_event_history_stay_at_their_caps(lab_pki: Pki) -> None:
    em = emulator(lab_pki, Clock(), max_duplicates=50, events_history=20)
    for i in range(200):
        em.datagram_received(pap_request("alice", "wrong"), ("127.0.0.1", 41000 + i))
        assert len(em._seen) <= 50
    assert len(em._seen) == 50 and len(em.events) == 20 and em.events.maxlen == 20


def test_otp_challenges_are_capped_and_aged(lab_pki: Pki) -> None:
    clock = Clock()
    em = emulator(lab_pki, clock, max_conversations=30, max_tls_conversations=5, round_timeout_s=5, max_age_s=10)
    for i in range(60):
        em.datagram_received(pap_request("dave"), ("127.0.0.1", 42000 + i))
    assert len(em._otp_states) <= 30
    clock.now += 11
    em.sweep()
    assert len(em._otp_states) == 30  # past max_age, inside the MFA session (180 s): a late OTP is InvalidSession
    clock.now += 230
    em.sweep()
    assert len(em._otp_states) == 0  # a third past the MFA session: forgotten


def test_mfa_holds_in_flight_are_capped(lab_pki: Pki) -> None:
    async def go() -> tuple[int, list[tuple[int, str | None]]]:
        em = emulator(lab_pki, Clock(), max_pending_holds=2)
        for i in range(3):
            em.datagram_received(pap_request("patient"), ("127.0.0.1", 43000 + i))  # a 20 s approval each
        held = len(em._tasks)
        await em.stop()
        return held, [(e.event_id, e.user) for e in em.events]

    held, events = asyncio.run(go())
    assert held == 2 and events == [(6274, "patient")]


def test_fast_reconnect_grants_stay_at_their_cap_and_age_out(lab_pki: Pki) -> None:
    clock = Clock()
    policy = EapServerPolicy(server_cert=lab_pki.server_chain, server_key=lab_pki.server_key, ca_file=lab_pki.ca,
                             fast_reconnect=True, fast_reconnect_sessions=3, fast_reconnect_lifetime_s=60)
    tls = ServerTls(policy, clock=clock)
    cache = tls.fast_reconnect
    assert cache is not None
    for _ in range(5):
        peer, server = peap_peer(lab_pki), EapServerSession(policy, {"alice": DEFAULT_PASSWORD}.get, tls=tls)
        step = server.handle(peer.start())
        while step.kind == "challenge":
            answer = peer.receive(step.eap)
            assert answer.reply is not None
            step = server.handle(answer.reply)
        assert step.kind == "success"
        assert len(cache) <= 3
        clock.now += 1
    assert len(cache) == 3 and cache.stats.granted == 5
    clock.now += 59  # the kept grants (given at +2, +3, +4 s) are now 62, 61 and 60 s old
    assert cache.expire() == 2 and len(cache) == 1
    clock.now += 2
    assert cache.expire() == 1 and len(cache) == 0


# --------------------------------------------------------------------------- configuration


def test_limits_come_from_the_config_with_one_line_errors(tmp_path: Path) -> None:
    cfg = config_from_dict({"limits": {"max_conversations": 500, "round_timeout": 7.5}}, "em.yaml")
    assert (cfg.limits.max_conversations, cfg.limits.round_timeout_s, cfg.limits.max_age_s) == (500, 7.5, 120.0)
    assert config_from_dict({}, "em.yaml").limits == EmulatorLimits()
    for doc, words in [
        ({"limits": {"max_conversations": 0}}, "em.yaml: limits: max_conversations must be a whole number"),
        ({"limits": {"round_timeout": "soon"}}, "em.yaml: limits: round_timeout must be seconds"),
        ({"limits": {"max_sessions": 3}}, "em.yaml: limits.max_sessions: unknown field"),
        ({"limits": {"round_timeout": 200}}, "round_timeout (200) cannot exceed max_age (120)"),
        ({"limits": [1]}, "em.yaml: limits: must be a mapping"),
    ]:
        with pytest.raises(EmulatorConfigError) as info:
            config_from_dict(doc, "em.yaml")
        assert words in str(info.value) and "\n" not in str(info.value)


def test_fast_reconnect_bounds_come_from_the_eap_config(lab_pki: Pki) -> None:
    doc = {"eap": {"pki": str(lab_pki.directory), "fast_reconnect_sessions": 7, "fast_reconnect_lifetime": 30}}
    cfg = config_from_dict(doc, "em.yaml")
    assert cfg.eap is not None
    tls = ServerTls(cfg.eap.policy())
    assert tls.fast_reconnect is not None and (tls.fast_reconnect.max_sessions, tls.fast_reconnect.lifetime_s) == (7, 30)
    for key, value in [("fast_reconnect_sessions", 0), ("fast_reconnect_sessions", 1_000_001),
                       ("fast_reconnect_lifetime", 86_401), ("fast_reconnect_lifetime", True)]:
        with pytest.raises(EmulatorConfigError, match=f"em.yaml: eap.{key}: must be a whole number"):
            config_from_dict({"eap": {"pki": str(lab_pki.directory), key: value}}, "em.yaml")
