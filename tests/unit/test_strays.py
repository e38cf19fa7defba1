"""Replies whose Identifier matches no request in flight (strays) reach the Outcome (helper E's finding).

The sans-IO round classifies the first few strays of a round (``previous``: a straggling
answer to the request last sent with that Identifier, normal after a retransmission;
``misidentified``: an answer to THIS round's request that carries another Identifier;
``unmatched``: anything else) and counts them all.  A discard whose final round got
strays that are not stragglers is diagnosed ``replies_match_no_request``, not ``no_reply``.
Both drivers (the asyncio pool, the blocking socket) feed strays the same way: the
driver tests run them against a small scripted server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from probe.conversation import Conversation
from probe.drivers.aio import RadiusClient, authenticate
from probe.drivers.blocking import authenticate_blocking
from probe.outcome import Outcome
from probe.radius import packet as pk
from probe.radius.transport import (
    MAX_IGNORED_KEPT,
    STRAY_MISIDENTIFIED,
    STRAY_PREVIOUS,
    STRAY_UNMATCHED,
    Disposition,
    RetryPolicy,
    Round,
)
from probe.verdict import judge_outcome
from probe.model import Expectation
from tests.helpers import pap, run

SECRET = b"radius-probe-lab"
POLICY = RetryPolicy(timeout_s=0.3, retries=0, listen_s=0.5)  # one transmission per round, classified in 0.5 s
STRAY_NOTE = "the server answered a request with another Identifier"


def request(ident: int, auth: bytes = b"A" * 16) -> pk.Packet:
    return pk.build_request(ident, auth, [(pk.USER_NAME, b"alice")], SECRET)


def signed_with_identifier(code: int, req: pk.Packet, ident: int, attrs: list[pk.Attr] | None = None) -> bytes:
    """A reply to ``req`` whose header carries ``ident``, its Response Authenticator computed over that header."""
    body = b"".join(bytes((t, len(v) + 2)) + v for t, v in attrs or [])
    head = struct.pack("!BBH", code, ident, 20 + len(body))
    return head + hashlib.md5(head + req.authenticator + body + SECRET).digest() + body


def kinds(rnd: Round) -> list[str]:
    return [kind for _, kind, _ in rnd.exchange.strays]


# -- the sans-IO round ---------------------------------------------------------


def test_an_answer_to_our_request_under_another_identifier_is_a_misidentified_stray() -> None:
    req = request(3)
    rnd = Round(req, POLICY, SECRET)
    rnd.poll(0.0)
    data = signed_with_identifier(pk.ACCESS_ACCEPT, req, 10)
    assert rnd.receive(data, 0.1) is Disposition.STRAY  # never accepted
    assert not rnd.done and rnd.exchange.reply is None
    assert kinds(rnd) == [STRAY_MISIDENTIFIED] and rnd.exchange.stray_total == rnd.exchange.stray_unmatched == 1
    assert "Identifier 10 (Access-Accept" in rnd.exchange.strays[0][2] and "Identifier 3" in rnd.exchange.strays[0][2]


def test_a_straggler_to_the_identifiers_previous_request_is_a_plain_stray() -> None:
    old, req = request(5, b"O" * 16), request(6)
    rnd = Round(req, POLICY, SECRET)
    rnd.poll(0.0)
    straggler = pk.build_reply(pk.ACCESS_CHALLENGE, old, [(pk.STATE, b"s")], SECRET)
    assert rnd.stray(straggler, 0.1, old) is Disposition.STRAY
    assert kinds(rnd) == [STRAY_PREVIOUS] and rnd.exchange.stray_unmatched == 0
    # the same datagram without the driver's previous request matches nothing we know
    assert rnd.stray(straggler, 0.2) is Disposition.STRAY
    assert kinds(rnd) == [STRAY_PREVIOUS, STRAY_UNMATCHED] and rnd.exchange.stray_unmatched == 1
    assert rnd.exchange.stray_total == 2


def test_a_straggler_with_the_rounds_own_identifier_is_kept_as_previous() -> None:
    old, req = request(7, b"O" * 16), request(7, b"N" * 16)
    rnd = Round(req, POLICY, SECRET, previous=old)
    rnd.poll(0.0)
    assert rnd.receive(pk.build_reply(pk.ACCESS_ACCEPT, old, [], SECRET), 0.1) is Disposition.STRAY
    assert kinds(rnd) == [STRAY_PREVIOUS] and rnd.exchange.ignored_total == 0


def test_strays_are_counted_but_only_a_few_are_kept_and_classified() -> None:
    req = request(1)
    rnd = Round(req, POLICY, SECRET)
    rnd.poll(0.0)
    data = signed_with_identifier(pk.ACCESS_ACCEPT, req, 2)
    for i in range(5000):
        assert rnd.stray(data, 0.1, None) is Disposition.STRAY
    ex = rnd.exchange
    assert ex.stray_total == 5000 and len(ex.strays) == MAX_IGNORED_KEPT == ex.stray_unmatched
    assert rnd.stray(b"\x02", 0.2) is Disposition.STRAY and ex.stray_total == 5001


def test_strays_after_the_round_ended_are_duplicates() -> None:
    req = request(1)
    rnd = Round(req, POLICY, SECRET)
    rnd.poll(0.0)
    assert rnd.receive(pk.build_reply(pk.ACCESS_ACCEPT, req, [], SECRET), 0.1) is Disposition.ACCEPTED
    assert rnd.stray(signed_with_identifier(pk.ACCESS_ACCEPT, req, 2), 0.2) is Disposition.DUPLICATE
    assert rnd.exchange.stray_total == 0


# -- the sans-IO conversation and the judge --------------------------------------


def converse_by_hand(cfg: Any, feed: Callable[[Conversation, pk.Packet, float], None]) -> Outcome:
    """A minimal driver: Identifier 9 for round 1, 10 for round 2..., ``feed`` after each send, then timers."""
    conv = Conversation(cfg, nas_ip="192.0.2.10")
    now, ident, previous = 0.0, 9, {}
    conv.start(now)
    for _ in range(100):
        for i, req in conv.released():
            if req is not None:
                previous[i] = req
        if conv.done:
            break
        if conv.wants_identifier:
            conv.begin_round(ident, previous.get(ident))
            ident += 1
            continue
        data = conv.poll(now)
        if data is not None:
            feed(conv, pk.parse_packet(data), now)
            continue
        if not conv.done and not conv.wants_identifier:
            assert conv.next_deadline is not None
            now = conv.next_deadline
    assert conv.done
    o = conv.outcome
    judge_outcome(o, Expectation(result="accept"))
    return o


def test_a_discard_with_misidentified_answers_is_not_no_reply() -> None:
    def feed(conv: Conversation, req: pk.Packet, now: float) -> None:
        for _ in range(3):
            conv.stray(signed_with_identifier(pk.ACCESS_ACCEPT, req, (req.identifier + 7) % 256), now + 0.01)

    o = converse_by_hand(pap(("192.0.2.1", 1812), "alice", policy=POLICY, secret=SECRET.decode()), feed)
    codes = [d["code"] for d in o.diagnosis]
    assert o.result == "discard" and codes[0] == "replies_match_no_request" and "no_reply" not in codes
    assert o.stray_replies == 3 and o.attempts[-1].stray_total == 3 and o.attempts[-1].stray_unmatched == 3
    assert len(o.attempts[-1].strays) == 3 and f"{STRAY_MISIDENTIFIED}: Identifier 16" in o.attempts[-1].strays[0]
    assert sum(w.startswith(STRAY_NOTE) for w in o.warnings) == 1  # one copy
    doc = json.loads(o.to_json())
    assert doc["stray_replies"] == 3 and doc["attempts"][-1]["stray_total"] == 3
    assert "3 repl(ies) to round 1 matched no request in flight" in o.diagnosis[0]["text"]
    assert SECRET.decode() not in o.to_json()


def test_unmatched_strays_give_the_diagnosis_without_the_misidentified_note() -> None:
    def feed(conv: Conversation, req: pk.Packet, now: float) -> None:
        conv.stray(pk.build_reply(pk.ACCESS_ACCEPT, request(200, b"Z" * 16), [], SECRET), now + 0.01)

    o = converse_by_hand(pap(("192.0.2.1", 1812), "alice", policy=POLICY, secret=SECRET.decode()), feed)
    assert o.result == "discard" and o.diagnosis[0]["code"] == "replies_match_no_request"
    assert not any(w.startswith(STRAY_NOTE) for w in o.warnings)


def test_a_straggler_after_a_retransmission_is_no_diagnosis() -> None:
    """Round 1 answered; its second answer arrives during round 2, which stays silent: a plain discard."""
    first: list[pk.Packet] = []

    def feed(conv: Conversation, req: pk.Packet, now: float) -> None:
        if not first:
            first.append(req)
            conv.receive(pk.build_reply(pk.ACCESS_CHALLENGE, req, [(pk.STATE, b"s")], SECRET), now + 0.01)
        else:  # the duplicate answer to round 1's retransmission, routed as a stray by its Identifier (9)
            conv.stray(pk.build_reply(pk.ACCESS_CHALLENGE, first[0], [(pk.STATE, b"s")], SECRET), now + 0.01,
                       first[0])

    o = converse_by_hand(pap(("192.0.2.1", 1812), "dave", otp="123456", policy=POLICY, secret=SECRET.decode()),
                         feed)
    codes = [d["code"] for d in o.diagnosis]
    assert o.result == "discard" and o.round_trips == 2 and "replies_match_no_request" not in codes
    assert o.stray_replies == 1 and o.attempts[-1].stray_unmatched == 0
    assert f"{STRAY_PREVIOUS}: Identifier 9" in o.attempts[-1].strays[0]


# -- both drivers, over 127.0.0.1 --------------------------------------------------


class Scripted(asyncio.DatagramProtocol):
    """A server on 127.0.0.1 answering the n-th Access-Request with ``script(request, n)`` (delay, datagram) pairs."""

    def __init__(self, script: Callable[[pk.Packet, int], list[tuple[float, bytes]]]) -> None:
        self.script = script
        self.seen = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.seen += 1
        loop = asyncio.get_running_loop()
        for delay, answer in self.script(pk.parse_packet(data), self.seen):
            loop.call_later(delay, self._send, answer, addr)

    def _send(self, data: bytes, addr: Any) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)


@asynccontextmanager
async def scripted(script: Callable[[pk.Packet, int], list[tuple[float, bytes]]]) -> AsyncIterator[tuple[str, int]]:
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: Scripted(script), local_addr=("127.0.0.1", 0))
    try:
        yield transport.get_extra_info("sockname")[:2]
    finally:
        transport.close()


def both_drivers(script: Callable[[pk.Packet, int], list[tuple[float, bytes]]], user: str = "alice",
                 **kw: Any) -> tuple[Outcome, Outcome]:
    async def go() -> tuple[Outcome, Outcome]:
        async with scripted(script) as addr:
            cfg = pap(addr, user, policy=POLICY, secret=SECRET.decode(), **kw)
            aio = await authenticate(cfg)
            blocking = await asyncio.to_thread(authenticate_blocking, cfg)
            return aio, blocking
    return run(go())


def test_both_drivers_bring_misidentified_answers_to_the_outcome() -> None:
    def script(req: pk.Packet, n: int) -> list[tuple[float, bytes]]:
        return [(0.0, signed_with_identifier(pk.ACCESS_ACCEPT, req, (req.identifier + 7) % 256))] * 2

    for o in both_drivers(script):
        assert o.result == "discard" and o.diagnosis[0]["code"] == "replies_match_no_request", o.to_json()
        assert o.stray_replies == 2 and [a.stray_unmatched for a in o.attempts] == [2]
        assert all(f" {STRAY_MISIDENTIFIED}: " in s for s in o.attempts[0].strays)
        assert any(w.startswith(STRAY_NOTE) for w in o.warnings)


def test_both_drivers_keep_a_straggler_to_an_earlier_round_plain() -> None:
    """Round 1 is answered at once and again 0.1 s later (as to a retransmission); round 2 gets silence."""
    def script(req: pk.Packet, n: int) -> list[tuple[float, bytes]]:
        if req.get(pk.STATE) is None:  # round 1 (of each driver's conversation)
            answer = pk.build_reply(pk.ACCESS_CHALLENGE, req, [(pk.STATE, b"s")], SECRET)
            return [(0.0, answer), (0.1, answer)]
        return []

    aio, blocking = both_drivers(script, "dave", otp="123456")
    for o in (aio, blocking):
        codes = [d["code"] for d in o.diagnosis]
        assert o.result == "discard" and o.round_trips == 2 and "replies_match_no_request" not in codes, o.to_json()
        assert o.stray_replies == 1 and [a.stray_unmatched for a in o.attempts] == [0, 0]
        assert len(o.attempts[1].strays) == 1 and f" {STRAY_PREVIOUS}: " in o.attempts[1].strays[0]
    assert [d["code"] for d in aio.diagnosis] == [d["code"] for d in blocking.diagnosis]


def test_the_pool_counts_socket_strays_as_before() -> None:
    """The pool's per-socket counter still sees every stray (what `load` reports)."""
    def script(req: pk.Packet, n: int) -> list[tuple[float, bytes]]:
        return [(0.0, signed_with_identifier(pk.ACCESS_ACCEPT, req, (req.identifier + 7) % 256))] * 3

    async def go() -> tuple[Outcome, int]:
        async with scripted(script) as addr:
            cfg = pap(addr, "alice", policy=POLICY, secret=SECRET.decode())
            async with RadiusClient(addr, SECRET) as client:
                o = await authenticate(cfg, client)
                return o, client.stray_replies
    o, socket_strays = run(go())
    assert socket_strays == 3 == o.stray_replies
