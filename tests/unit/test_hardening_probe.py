"""Probe-side bounds (issue 11: findings 1, 3, 7, 8, 10) on the sans-IO machines, with bytes and a fake clock.

A small fake driver (``Wire``) allocates Identifiers, tells the machine the time,
records what it sends, and hands back replies built with the server side of
``probe.radius.packet``: no sockets, no waiting.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import tracemalloc
from typing import Any

import pytest

from probe.conversation import Conversation
from probe.diagnosis import CATALOGUE, code_for_error
from probe.drivers.icmp import IcmpError, judge_error, quote_matches
from probe.eap.tls_framing import EapTlsError, Flags, Reassembler, TlsPayload
from probe.methods import RoundPayload
from probe.model import ROUND_LIMIT_CEILING, ROUND_LIMIT_FLOOR
from probe.outcome import ErrorKind, Outcome, finalize
from probe.radius import packet as pk
from probe.radius.transport import MAX_IGNORED_KEPT, Disposition, RetryPolicy, Round
from tests.helpers import Endless, pap

SECRET = b"radius-probe-lab"
SERVER = ("192.0.2.1", 1812)
T0 = 500.0
EAP_REQUEST = b"\x01\x01\x00\x05\x01"  # an EAP-Request/Identity, as a challenger would send


def counter_random() -> Any:
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


class Wire:
    """A fake driver over one Conversation (Identifiers 1, 2, ...; time only when told)."""

    def __init__(self, cfg: Any, method: Any = None) -> None:
        self.conv = Conversation(cfg, method, nas_ip="192.0.2.10", urandom=counter_random())
        self.now = T0
        self.sent: list[tuple[float, bytes]] = []
        self.idents = itertools.cycle(range(256))
        self.conv.start(self.now)
        self.pump()

    def pump(self) -> None:
        for _ in range(1000):
            self.conv.released()
            if self.conv.done:
                return
            if self.conv.wants_identifier:
                self.conv.begin_round(next(self.idents))
                continue
            data = self.conv.poll(self.now)
            if data is None:
                return
            self.sent.append((self.now, data))
        raise AssertionError("the machine kept asking")

    def wait(self) -> float:
        """Nothing arrives: the driver sleeps until the machine's next deadline, then polls."""
        deadline = self.conv.next_deadline
        assert deadline is not None and deadline > self.now
        self.now = deadline
        self.pump()
        return deadline - T0

    @property
    def request(self) -> pk.Packet:
        return pk.parse_packet(self.sent[-1][1])

    def answer(self, t: float, code: int, attrs: list[pk.Attr] | None = None, *, secret: bytes = SECRET,
               ma: bool = True, raw: bytes | None = None) -> Disposition:
        self.now = T0 + t
        data = raw if raw is not None else pk.build_reply(code, self.request, attrs or [], secret,
                                                          message_authenticator=ma)
        disposition = self.conv.receive(data, self.now)
        self.pump()
        return disposition

    @property
    def outcome(self) -> Outcome:
        assert self.conv.done
        return self.conv.outcome




class Mfa(Endless):
    """Answers challenges until the server accepted the first factor (after one round), like PEAP + MFA."""

    def on_challenge(self, reply: pk.Packet) -> RoundPayload | None:
        self.primary_auth_done = True
        return self.start()


def cfg(policy: RetryPolicy, **kw: Any) -> Any:
    return pap(SERVER, "alice", password="Passw0rd!", secret=SECRET.decode(), policy=policy, **kw)


# -- finding 1: invalid replies are counted, a few are kept ------------------------------------------


def test_a_flood_of_bad_replies_is_counted_not_kept() -> None:
    w = Wire(cfg(RetryPolicy(timeout_s=10.0, retries=0)))
    for i in range(5000):
        assert w.answer(0.001 * (i + 1), pk.ACCESS_ACCEPT, secret=b"wrong") is Disposition.IGNORED
    w.answer(6.0, pk.ACCESS_ACCEPT)
    o = finalize(w.outcome)
    assert o.result == "accept" and o.ignored_replies == 5000
    assert len(o.attempts) == 1 and len(o.attempts[0].ignored) == MAX_IGNORED_KEPT == 8
    assert o.attempts[0].ignored_total == 5000
    doc = json.loads(o.to_json())
    assert doc["ignored_replies"] == 5000 and doc["attempts"][0]["ignored_total"] == 5000
    assert len(o.to_json()) < 4000  # was one line per reply: 49 MB for 503,596 of them


def test_a_flood_then_silence_ends_as_the_last_ignored_error() -> None:
    w = Wire(cfg(RetryPolicy(timeout_s=1.0, retries=0)))
    for i in range(100):
        w.answer(0.001 * (i + 1), pk.ACCESS_ACCEPT, secret=b"wrong")
    good = bytearray(pk.build_reply(pk.ACCESS_ACCEPT, w.request, [], SECRET))
    good[2:4] = (len(good) + 10).to_bytes(2, "big")  # Length past the datagram: malformed, and the last one
    w.answer(0.5, pk.ACCESS_ACCEPT, raw=bytes(good))
    w.wait()
    o = finalize(w.outcome)
    assert (o.result, o.error_kind) == ("error", "malformed")  # the last ignored reply's error, not the first's
    assert o.ignored_replies == 101 and len(o.attempts[-1].ignored) == MAX_IGNORED_KEPT
    assert all("bad_authenticator" in line for line in o.attempts[-1].ignored)


def test_a_round_keeps_the_first_few_and_the_last() -> None:
    request = pk.build_request(3, b"\x11" * 16, [(pk.USER_NAME, b"a")], SECRET)
    rnd = Round(request, RetryPolicy(timeout_s=1.0, retries=0), SECRET)
    rnd.poll(0.0)
    for i in range(20):
        bad = pk.build_reply(pk.ACCESS_ACCEPT, request, [(pk.REPLY_MESSAGE, str(i).encode())], b"other")
        assert rnd.receive(bad, 0.01 * i) is Disposition.IGNORED
    ex = rnd.exchange
    assert ex.ignored_total == 20 and len(ex.ignored) == MAX_IGNORED_KEPT
    assert ex.last_ignored is not None and ex.last_ignored[0] == pytest.approx(0.19)
    rnd.poll(1.0)
    assert rnd.done and ex.error_kind == "bad_authenticator"


def test_eap_tls_reassembly_refuses_a_1_gb_announcement_without_allocating_it() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(EapTlsError, match="announced TLS message length 1073741824 exceeds"):
            Reassembler().add(TlsPayload(Flags.LENGTH | Flags.MORE, 0, 1 << 30, b"\x16" * 100))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    r = Reassembler()
    with pytest.raises(EapTlsError, match="exceeds the 65536-byte limit"):
        for _ in range(100):  # fragments without L: the cap still bounds them
            r.add(TlsPayload(Flags.MORE, 0, None, b"\x16" * 1000))


# -- finding 3: an overall deadline; a round limit of 64..256 -----------------------------------------


def test_default_deadline_is_the_clients_whole_wait() -> None:
    assert RetryPolicy(timeout_s=1.0, retries=2).total_deadline_s == 3.0
    assert RetryPolicy(timeout_s=1.0, retries=2, listen_s=10.0).total_deadline_s == 10.0
    assert RetryPolicy(timeout_s=1.0, retries=2, listen_s=10.0, deadline_s=4.5).total_deadline_s == 4.5
    assert RetryPolicy().total_deadline_s == 90.0


def test_a_server_slow_on_every_round_meets_the_deadline() -> None:
    """Each round answered after 0.9 s with a 1 s timeout: 57.7 s before; now the 3 s deadline ends it."""
    w = Wire(cfg(RetryPolicy(timeout_s=1.0, retries=2)), Endless())
    t = 0.0
    while not w.conv.done:
        assert w.conv.next_deadline is not None and w.conv.next_deadline <= T0 + 3.0  # nothing waits past it
        if t + 0.9 < 3.0:
            t += 0.9
            w.answer(t, pk.ACCESS_CHALLENGE, [(pk.EAP_MESSAGE, EAP_REQUEST)])
        else:
            t = w.wait()
    o = finalize(w.outcome)
    assert (o.result, o.error_kind) == ("error", ErrorKind.DEADLINE)
    assert o.duration_s == pytest.approx(3.0) and o.round_trips == 4 and o.deadline_s == 3.0
    assert o.error_detail == ("the authentication did not finish within its 3 s deadline: 3.0 s, 3 round(s) "
                              "answered, round 4 cut after 0.3 s")
    assert [d["code"] for d in o.diagnosis] == ["authentication_deadline"]
    assert o.diagnosis[0]["text"].startswith("The server took too long in total")
    assert json.loads(o.to_json())["deadline_s"] == 3.0


def test_a_challenge_arriving_after_the_deadline_starts_no_round() -> None:
    w = Wire(cfg(RetryPolicy(timeout_s=1.0, retries=2, listen_s=10.0, deadline_s=2.0)), Endless())
    w.answer(2.5, pk.ACCESS_CHALLENGE, [(pk.EAP_MESSAGE, EAP_REQUEST)])  # late, but before the driver polled
    o = w.outcome
    assert (o.result, o.error_kind, o.round_trips) == ("error", "deadline", 1) and len(w.sent) == 1
    assert o.error_detail is not None and "none left for round 2" in o.error_detail


def test_a_silent_final_round_cut_by_the_deadline_is_a_discard_with_a_warning() -> None:
    """PEAP + MFA: the first factor answered at once, the final round held: still the MFA discard."""
    w = Wire(cfg(RetryPolicy(timeout_s=2.0, retries=2)), Mfa())
    w.answer(0.2, pk.ACCESS_CHALLENGE, [(pk.EAP_MESSAGE, EAP_REQUEST)])
    while not w.conv.done:
        w.wait()
    o = finalize(w.outcome)
    assert (o.result, o.error_kind, o.duration_s) == ("discard", None, pytest.approx(6.0))
    assert "cut after 5.8 s by the 6 s deadline" in o.warnings[0]
    assert [d["code"] for d in o.diagnosis] == ["nps_discard_after_primary_auth"]


def test_ignored_replies_still_give_their_error_when_the_deadline_cuts() -> None:
    w = Wire(cfg(RetryPolicy(timeout_s=5.0, retries=0, deadline_s=1.0)))
    w.answer(0.1, pk.ACCESS_ACCEPT, secret=b"wrong")
    assert w.wait() == pytest.approx(1.0)
    o = w.outcome
    assert (o.result, o.error_kind, o.ignored_replies) == ("error", "bad_authenticator", 1)


@pytest.mark.parametrize("mtu, limit", [(1500, 64), (1344, 64), (400, 81), (200, 126), (115, 198),
                                        (100, 226), (64, 256), (30, 256)])
def test_round_limit_is_a_function_of_the_mtu_within_64_and_256(mtu: int, limit: int) -> None:
    assert cfg(RetryPolicy(), framed_mtu=mtu).round_limit == limit
    assert ROUND_LIMIT_FLOOR <= limit <= ROUND_LIMIT_CEILING


def test_an_endless_challenger_with_a_small_mtu_stops_at_the_ceiling() -> None:
    w = Wire(cfg(RetryPolicy(timeout_s=1.0, retries=0, deadline_s=10_000.0), framed_mtu=100), Endless())
    rounds = 0
    while not w.conv.done and rounds < 20_000:
        rounds += 1
        w.answer(0.001 * rounds, pk.ACCESS_CHALLENGE, [(pk.EAP_MESSAGE, EAP_REQUEST)])
    o = w.outcome
    assert (o.result, o.error_kind, o.round_trips) == ("error", "eap", 226)
    assert len(o.to_json()) < 100_000  # was 12,040 rounds and 2.3 MB


def test_the_deadline_error_kind_has_a_diagnosis() -> None:
    assert code_for_error("deadline", "x") == "authentication_deadline" and "authentication_deadline" in CATALOGUE


# -- finding 7: a discard seen on few transmissions may be packet loss --------------------------------


@pytest.mark.parametrize("retries, noted", [(0, True), (1, True), (2, False)])
def test_a_discard_on_few_transmissions_says_loss_looks_the_same(retries: int, noted: bool) -> None:
    w = Wire(cfg(RetryPolicy(timeout_s=1.0, retries=retries)), Mfa())
    w.answer(0.1, pk.ACCESS_CHALLENGE, [(pk.EAP_MESSAGE, EAP_REQUEST)])
    while not w.conv.done:
        w.wait()
    o = finalize(w.outcome)
    assert o.result == "discard" and o.diagnosis[0]["code"] == "nps_discard_after_primary_auth"
    text = o.diagnosis[0]["text"]
    assert ("packet loss gives the same picture" in text and "--retries" in text) is noted
    if noted:
        assert f"only {retries + 1} transmission(s) of the final request went unanswered" in text


def test_a_first_round_discard_on_one_transmission_is_noted_too() -> None:
    w = Wire(cfg(RetryPolicy(timeout_s=1.0, retries=0)))
    w.wait()
    o = finalize(w.outcome)
    assert o.diagnosis[0]["code"] == "no_reply" and "packet loss gives the same picture" in o.diagnosis[0]["text"]


# -- finding 10: Message-Authenticator edges ----------------------------------------------------------


def _with_second_ma(request: pk.Packet) -> bytes:
    """A reply carrying two Message-Authenticators, both the HMAC of the packet with both zeroed."""
    attrs = bytes((pk.MESSAGE_AUTHENTICATOR, 18)) + b"\x00" * 16
    attrs += attrs
    raw = bytearray(bytes((pk.ACCESS_ACCEPT, request.identifier)) + (20 + len(attrs)).to_bytes(2, "big")
                    + request.authenticator + attrs)
    mac = hmac.new(SECRET, bytes(raw), hashlib.md5).digest()
    raw[22:38] = mac
    raw[40:56] = mac
    raw[4:20] = hashlib.md5(bytes(raw[:4]) + request.authenticator + bytes(raw[20:]) + SECRET).digest()
    return bytes(raw)


def test_two_message_authenticators_in_a_reply_do_not_verify() -> None:
    request = pk.build_request(9, b"\x22" * 16, [(pk.USER_NAME, b"a")], SECRET)
    data = _with_second_ma(request)
    assert len(pk.find_all(pk.parse_packet(data).attributes, pk.MESSAGE_AUTHENTICATOR)) == 2
    with pytest.raises(pk.PacketError) as info:
        pk.verify_reply(data, request, SECRET)
    assert info.value.kind == "bad_authenticator"
    assert info.value.detail == "Message-Authenticator in the reply does not verify"


def test_an_unsigned_reply_carrying_eap_message_is_ignored() -> None:
    w = Wire(cfg(RetryPolicy(timeout_s=1.0, retries=0)), Endless())
    assert w.answer(0.1, pk.ACCESS_CHALLENGE, [(pk.EAP_MESSAGE, EAP_REQUEST)], ma=False) is Disposition.IGNORED
    assert not w.conv.done
    w.wait()
    o = finalize(w.outcome)
    assert (o.result, o.error_kind, o.ignored_replies) == ("error", "bad_authenticator", 1)
    assert o.error_detail is not None and o.error_detail.startswith(
        "Message-Authenticator missing from a reply carrying EAP-Message")


def test_an_unsigned_eap_reply_does_not_end_the_wait_for_a_signed_one() -> None:
    w = Wire(cfg(RetryPolicy(timeout_s=1.0, retries=0)), Endless())
    w.answer(0.1, pk.ACCESS_REJECT, [(pk.EAP_MESSAGE, b"\x04\x01\x00\x04")], ma=False)  # a forged EAP-Failure
    w.answer(0.2, pk.ACCESS_REJECT, [(pk.EAP_MESSAGE, b"\x04\x01\x00\x04")])
    o = w.outcome
    assert o.result == "reject" and o.message_authenticator == "valid" and o.ignored_replies == 1


def test_an_unsigned_pap_reply_is_still_an_answer() -> None:
    w = Wire(cfg(RetryPolicy(timeout_s=1.0, retries=0)))
    w.answer(0.1, pk.ACCESS_ACCEPT, ma=False)
    o = w.outcome
    assert o.result == "accept" and o.message_authenticator == "absent" and o.ignored_replies == 0


# -- finding 8: which ICMP errors count (the drivers' rule; over real sockets in test_hardening_drivers) --


TARGET = ("127.0.0.1", 1812)


def icmp(offender: str | None, to: tuple[str, int] | None, type_: int = 3, code: int = 3,
         quoted: bytes = b"\x01\x07", origin: int = 2) -> IcmpError:
    return IcmpError(111, origin, type_, code, offender, to, quoted)


@pytest.mark.parametrize("err, counts", [
    (icmp("127.0.0.1", TARGET), "ICMP port unreachable: nothing listens there"),
    (icmp("127.0.0.2", TARGET), None),  # only the target host itself says nothing listens on its port
    (icmp("127.0.0.1", ("127.0.0.2", 1812)), None),  # about another destination
    (icmp("127.0.0.1", ("127.0.0.1", 1813)), None),  # about another port
    (icmp("127.0.0.1", None), None),  # no quoted destination: cannot be matched
    (icmp("192.0.2.254", TARGET, code=1), "ICMP host unreachable"),  # a router may say the host is unreachable
    (icmp("127.0.0.1", TARGET, code=4), None),  # fragmentation needed: not an unreachable
    (icmp("127.0.0.1", TARGET, type_=11, code=0), None),  # time exceeded
    (icmp("::1", ("::1", 1812), type_=1, code=4, origin=3), None),  # IPv6 error, IPv4 target
])
def test_only_an_icmp_error_about_the_target_counts(err: IcmpError, counts: str | None) -> None:
    assert judge_error(err, TARGET) == counts


def test_icmpv6_port_unreachable_from_the_target_counts() -> None:
    err = icmp("::1", ("::1", 1812), type_=1, code=4, origin=3)
    assert judge_error(err, ("::1", 1812)) == "ICMP port unreachable: nothing listens there"


def test_the_quote_must_be_the_request_in_flight() -> None:
    request = pk.build_request(7, b"\x33" * 16, [(pk.USER_NAME, b"alice")], SECRET).raw
    assert quote_matches(request, request) and quote_matches(request[:40], request)
    assert quote_matches(b"", request)  # RFC 792 quotes only the UDP header: nothing to tell by
    assert not quote_matches(request[:1] + b"\x08" + request[2:], request)  # another Identifier
    assert not quote_matches(request + b"x", request)


def test_a_verified_answer_never_carries_an_unreachable_diagnosis() -> None:
    o = Outcome(target="127.0.0.1:1812", method="pap", identity="alice", result="accept",
                error_kind=ErrorKind.UNREACHABLE, final_response_s=0.001)
    finalize(o)
    assert "port_unreachable" not in [d["code"] for d in o.diagnosis]
