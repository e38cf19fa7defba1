"""Transport and classification of replies we cannot trust, over loopback UDP."""

from __future__ import annotations

import asyncio
import hashlib
import struct
from typing import Any

from probe.drivers.aio import authenticate
from probe.radius import packet as pk
from probe.radius.transport import RetryPolicy
from tests.helpers import emulator, free_udp_port, pap, rogue, run

SECRET = b"radius-probe-lab"


def probe_rogue(respond, **kw):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        async with rogue(respond) as addr:
            return await authenticate(pap(addr, "alice", **kw))

    return run(go())


def test_reply_signed_with_another_secret_is_bad_authenticator() -> None:
    o = probe_rogue(lambda req: pk.build_reply(pk.ACCESS_ACCEPT, req, [], b"other-secret"))
    assert (o.result, o.error_kind) == ("error", "bad_authenticator")
    assert [d["code"] for d in o.diagnosis] == ["bad_authenticator"]
    assert o.attempts[-1].ignored and "Response Authenticator" in o.attempts[-1].ignored[0]
    assert "other-secret" not in o.to_json() and SECRET.decode() not in o.to_json()


def test_wrong_message_authenticator_in_reply_is_bad_authenticator() -> None:
    def respond(req: pk.Packet) -> bytes:
        raw = bytearray(pk.build_reply(pk.ACCESS_ACCEPT, req, [], SECRET))
        raw[22] ^= 0xFF  # break the Message-Authenticator, keep the Response Authenticator right
        raw[4:20] = hashlib.md5(bytes(raw[:4]) + req.authenticator + bytes(raw[20:]) + SECRET).digest()
        return bytes(raw)

    o = probe_rogue(respond)
    assert (o.result, o.error_kind) == ("error", "bad_authenticator")
    assert "Message-Authenticator" in (o.error_detail or "")


def test_truncated_attribute_in_reply_is_malformed_not_a_traceback() -> None:
    def respond(req: pk.Packet) -> bytes:
        body = b"\x12\x20short"  # claims 32 bytes, carries 7
        return struct.pack("!BBH", 2, req.identifier, 20 + len(body)) + bytes(16) + body

    o = probe_rogue(respond)
    assert (o.result, o.error_kind) == ("error", "malformed")
    assert "claims 32 bytes" in (o.error_detail or "")
    assert [d["code"] for d in o.diagnosis] == ["malformed_reply"]


def test_a_spoofed_reply_is_ignored_and_the_real_one_counts() -> None:
    sent: list[int] = []

    async def go():  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()

        def respond(req: pk.Packet) -> bytes:
            sent.append(req.identifier)
            good = pk.build_reply(pk.ACCESS_ACCEPT, req, [], SECRET)
            loop.call_later(0.2, rogue_transport.sendto, good, peer[0])
            return pk.build_reply(pk.ACCESS_REJECT, req, [], b"spoofer")

        peer: list[Any] = []

        class Capture(asyncio.DatagramProtocol):
            def connection_made(self, transport):  # type: ignore[no-untyped-def]
                self.t = transport

            def datagram_received(self, data, addr):  # type: ignore[no-untyped-def]
                peer[:] = [addr]
                self.t.sendto(respond(pk.parse_packet(data)), addr)

        rogue_transport, _ = await loop.create_datagram_endpoint(Capture, local_addr=("127.0.0.1", 0))
        try:
            return await authenticate(pap(rogue_transport.get_extra_info("sockname")[:2], "alice"))
        finally:
            rogue_transport.close()

    o = run(go())
    assert o.result == "accept" and o.error_kind is None
    assert len(o.attempts[-1].ignored) == 1


def test_retransmissions_are_byte_identical_from_the_same_port() -> None:
    seen: list[tuple[bytes, Any]] = []

    async def go():  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()

        class Silent(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):  # type: ignore[no-untyped-def]
                seen.append((data, addr))

        t, _ = await loop.create_datagram_endpoint(Silent, local_addr=("127.0.0.1", 0))
        try:
            return await authenticate(pap(t.get_extra_info("sockname")[:2], "alice",
                                          policy=RetryPolicy(timeout_s=0.2, retries=3, listen_s=1.0)))
        finally:
            t.close()

    o = run(go())
    assert o.result == "discard" and o.retransmissions == 3
    assert len(seen) == 4
    assert len({data for data, _ in seen}) == 1 and len({addr for _, addr in seen}) == 1
    first = pk.parse_packet(seen[0][0])
    assert first.attributes[0][0] == pk.MESSAGE_AUTHENTICATOR
    sends = [a.sent_s for a in o.attempts]
    assert sends == sorted(sends) and [a.retransmission for a in o.attempts] == [0, 1, 2, 3]


def test_icmp_port_unreachable_is_unreachable() -> None:
    # A timeout far beyond any scheduling delay: had the timer ended it, there would be retransmissions.
    o = run(authenticate(pap(("127.0.0.1", free_udp_port()), "alice",
                             policy=RetryPolicy(timeout_s=30, retries=2, listen_s=90))))
    assert (o.result, o.error_kind) == ("error", "unreachable")
    assert [d["code"] for d in o.diagnosis] == ["port_unreachable"]
    assert o.retransmissions == 0 and o.client_timeout_s == 90  # ended by the ICMP error, not by the timeout
    assert [(a.round, a.retransmission, a.code, a.answered_s) for a in o.attempts] == [(1, 0, None, None)]


def test_rras_profile_attributes_reach_the_server() -> None:
    captured: list[pk.Packet] = []

    def respond(req: pk.Packet) -> bytes:
        captured.append(req)
        return pk.build_reply(pk.ACCESS_REJECT, req, [], SECRET)

    o = probe_rogue(respond, expected="reject", extra_attrs=[("Framed-MTU", "1344"), ("Filter-Id", "probe")])
    assert o.result == "reject" and o.expectation_met
    req = captured[0]
    types = [t for t, _ in req.attributes]
    assert types[0] == pk.MESSAGE_AUTHENTICATOR
    for wanted in (1, 2, 4, 5, 6, 7, 12, 30, 31, 32, 61, 64, 11):
        assert wanted in types, wanted
    assert req.get(12) == struct.pack("!I", 1344) and types.count(12) == 1  # --attr replaced the profile's
    vendor = {vt for t, v in req.attributes if t == 26 for vt, _ in pk.split_vsa(v)[1]}
    assert {9, 18, 34, 35, 47, 56} <= vendor  # MS-RAS-Vendor/-Version/-Client-Name/-Client-Version, NAS type, correlation


def test_generic_profile_sends_the_minimum() -> None:
    captured: list[pk.Packet] = []

    def respond(req: pk.Packet) -> bytes:
        captured.append(req)
        return pk.build_reply(pk.ACCESS_ACCEPT, req, [], SECRET)

    o = probe_rogue(respond, profile="generic")
    assert o.result == "accept"
    assert sorted(t for t, _ in captured[0].attributes) == [1, 2, 4, 32, 80]


def test_emulator_is_a_real_server_for_two_clients_at_once() -> None:
    async def go():  # type: ignore[no-untyped-def]
        async with emulator() as em:
            return await asyncio.gather(authenticate(pap(em.address, "alice")),
                                        authenticate(pap(em.address, "bob")))

    a, b = run(go())
    assert (a.result, b.result) == ("accept", "reject")
