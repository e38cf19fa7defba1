"""The probe against a hostile RadSec (RADIUS over TLS) server: every stream it cannot frame or trust
becomes a classification, never a traceback.

Bound: about 15 s on one core.  The peer (tests/servers/radsec_peer.py) is a real TLS server on
127.0.0.1 with the session PKI, scripted per case as tests/robustness/hostile.py scripts UDP:
garbage on the stream, Lengths below 20 and above 4096, a connection closed mid-record or
without an answer, wrong secrets and Identifiers, a record dripped byte by byte, a flood of
well-framed junk, random streams, and a TLS refusal.  The probe runs through its front door
(probe.checks.run_check) with short timeouts; each case asserts the classification, that
nothing raised (no ``internal`` error) and that the Outcome stays small.
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import Sequence
from typing import Any

import pytest

from probe.checks import RunOptions, run_check
from probe.drivers.radsec import RadsecFraming
from probe.model import RadsecOptions
from probe.outcome import Outcome
from probe.pki import Pki
from probe.radius import packet as pk
from probe.radius.transport import RetryPolicy
from tests.servers.radsec_peer import CLOSE, Action, Case, radsec_peer

from .conftest import assert_bounded, make_check

QUICK = RetryPolicy(timeout_s=0.4, retries=1, listen_s=0.8)  # one transmission on TCP, 0.8 s of waiting
SECRET = b"radsec"


def probe(pki: Pki, case: Case, *, cert: bool = True, require_client_cert: bool = True) -> Outcome:
    async def go() -> Outcome:
        async with radsec_peer(pki, case, require_client_cert=require_client_cert) as address:
            check = make_check("pap", address, secret="radsec", policy=QUICK)
            user = pki.users["alice"]
            check.target.radsec = RadsecOptions(cert=str(user.cert) if cert else None,
                                                key=str(user.key) if cert else None, ca=str(pki.ca),
                                                server_name="nps.lab.test")
            result = await asyncio.wait_for(run_check(check, address, RunOptions()), 30)
            return result.outcome
    o = asyncio.run(go())
    assert o.error_kind != "internal", o.to_json()
    assert_bounded(o)
    return o


def accept(request: pk.Packet, secret: bytes = SECRET) -> bytes:
    return pk.build_reply(pk.ACCESS_ACCEPT, request, [(pk.REPLY_MESSAGE, b"ok")], secret)


def header(length: int, code: int = pk.ACCESS_ACCEPT, ident: int = 0) -> bytes:
    return struct.pack("!BBH", code, ident, length)


CASES: dict[str, tuple[Case, str, str | None, str]] = {
    # name: (case, result, error_kind, detail fragment)
    "garbage text": (lambda r, s: [b"HELLO, this is not RADIUS at all\r\n"], "error", "malformed", "outside 20..4096"),
    "length below 20": (lambda r, s: [header(12, ident=r.identifier) + b"\0" * 16], "error", "malformed",
                        "Length 12 is outside"),
    "length above 4096": (lambda r, s: [header(5000, ident=r.identifier) + b"\0" * 60], "error", "malformed",
                          "Length 5000 is outside"),
    "length zero": (lambda r, s: [b"\0" * 24], "error", "malformed", "Length 0 is outside"),
    "closed mid-record": (lambda r, s: [accept(r)[:11], 0.05, CLOSE], "error", "radsec", "middle of a record (11 byte"),
    "closed mid-header": (lambda r, s: [accept(r)[:3], 0.05, CLOSE], "error", "radsec", "middle of a record (3 byte"),
    "closed without an answer": (lambda r, s: [CLOSE], "error", "radsec", "closed the connection without answering"),
    "wrong secret": (lambda r, s: [accept(r, b"not-radsec")], "error", "bad_authenticator", "Response Authenticator"),
    "another identifier": (lambda r, s: [pk.build_reply(pk.ACCESS_ACCEPT, pk.Packet(
        r.code, (r.identifier + 1) % 256, r.authenticator, r.attributes, r.raw), [], s)], "discard", None, ""),
    "silence": (lambda r, s: [2.0], "discard", None, ""),
    "dripped header then silence": (lambda r, s: [accept(r)[:2], 2.0], "discard", None, ""),
    "accounting code to an access request": (lambda r, s: [pk.build_reply(pk.ACCOUNTING_RESPONSE, r, [], s)],
                                             "error", "malformed", "does not answer"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_stream(lab_pki: Pki, robust: Any, name: str) -> None:
    case, result, kind, detail = CASES[name]
    o = probe(lab_pki, case)
    robust("radsec", name, o)
    assert (o.result, o.error_kind) == (result, kind), o.to_json()
    assert detail in (o.error_detail or ""), o.error_detail
    assert o.retransmissions == 0  # never a retransmission on the connection (RFC 6614 2.2)


def test_a_record_dripped_byte_by_byte_is_accepted(lab_pki: Pki, robust: Any) -> None:
    def drip(request: pk.Packet, secret: bytes) -> Sequence[Action]:
        out: list[Action] = []
        for b in accept(request):
            out += [bytes([b]), 0.002]
        return out
    o = probe(lab_pki, drip)
    robust("radsec", "dripped byte by byte", o)
    assert o.result == "accept" and o.reply_message == "ok"


def test_two_records_in_one_segment(lab_pki: Pki, robust: Any) -> None:
    """A junk record that frames but does not verify, then the real answer, in one write."""
    def both(request: pk.Packet, secret: bytes) -> Sequence[Action]:
        return [header(20, ident=request.identifier) + b"\x11" * 16 + accept(request)]
    o = probe(lab_pki, both)
    robust("radsec", "junk then answer in one segment", o)
    assert o.result == "accept" and o.ignored_replies == 1


def test_a_flood_of_well_framed_junk_stays_bounded(lab_pki: Pki, robust: Any) -> None:
    def flood(request: pk.Packet, secret: bytes) -> Sequence[Action]:
        junk = header(40, ident=request.identifier) + bytes(36)
        return [junk * 2000]
    o = probe(lab_pki, flood)
    robust("radsec", "2000 junk records", o)
    assert (o.result, o.error_kind) == ("error", "malformed") and o.ignored_replies == 2000  # zero-length attributes
    assert sum(len(a.ignored) for a in o.attempts) <= 8  # each counted, a few kept


@pytest.mark.parametrize("seed", range(12))
def test_random_streams(lab_pki: Pki, robust: Any, seed: int) -> None:
    rng = random.Random(seed)
    blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600)))
    o = probe(lab_pki, lambda r, s: [blob, 0.3, CLOSE])
    robust("radsec", f"random stream {seed}", o)
    assert o.result in ("error", "discard") and o.error_kind in (None, "malformed", "radsec", "bad_authenticator")


def test_server_refuses_a_client_without_certificate(lab_pki: Pki, robust: Any) -> None:
    o = probe(lab_pki, lambda r, s: [accept(r)], cert=False)
    robust("radsec", "no client certificate", o)
    assert (o.result, o.error_kind) == ("error", "radsec") and o.error_detail.startswith("RadSec TLS"), o.to_json()
    assert o.diagnosis[0]["code"] == "radsec_tls_failed"


def test_framing_rules() -> None:
    f = RadsecFraming()
    packet = header(24) + b"a" * 20
    assert f.feed(packet[:3]) == [] and f.pending == 3
    assert f.feed(packet[3:] + packet[:5]) == [packet] and f.pending == 5
    assert f.feed(packet[5:]) == [packet] and f.pending == 0
    for bad in (19, 4097, 65535):
        with pytest.raises(ValueError, match=f"Length {bad} is outside 20..4096"):
            RadsecFraming().feed(header(bad))
    assert RadsecFraming().feed(header(4096) + bytes(4092))[0][:4] == header(4096)


def plain_tcp_peer_probe(pki: Pki, send: bytes | None) -> Outcome:
    """A plain TCP server (no TLS) that writes ``send`` (None: says nothing) and holds the connection 2 s."""
    async def go() -> Outcome:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if send is not None:
                writer.write(send)
                await writer.drain()
            await asyncio.sleep(2.0)
            writer.close()
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        try:
            address = server.sockets[0].getsockname()[:2]
            check = make_check("pap", address, secret="radsec", policy=QUICK)
            check.target.radsec = RadsecOptions(ca=str(pki.ca), server_name="nps.lab.test")
            result = await asyncio.wait_for(run_check(check, address, RunOptions()), 30)
            return result.outcome
        finally:
            server.close()
    o = asyncio.run(go())
    assert o.error_kind != "internal", o.to_json()
    assert_bounded(o)
    return o


def test_garbage_instead_of_a_tls_handshake(lab_pki: Pki, robust: Any) -> None:
    o = plain_tcp_peer_probe(lab_pki, b"HTTP/1.1 400 Bad Request\r\n\r\n" + bytes(range(256)))
    robust("radsec", "garbage instead of TLS", o)
    assert (o.result, o.error_kind) == ("error", "radsec") and o.diagnosis[0]["code"] == "radsec_tls_failed", o.to_json()
    assert o.attempts == []


def test_a_peer_that_never_completes_the_handshake(lab_pki: Pki, robust: Any) -> None:
    o = plain_tcp_peer_probe(lab_pki, None)
    robust("radsec", "silent TCP peer", o)
    assert (o.result, o.error_kind) == ("error", "radsec") and "not established within" in (o.error_detail or "")
    assert 0.7 < o.duration_s < 5  # the connection's wait is part of the authentication's time
