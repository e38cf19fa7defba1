"""The sans-IO Conversation with bytes and a fake clock: no sockets, no event loop, no waiting.

A tiny fake driver (``Wire``) does what a real one does: it allocates Identifiers,
passes the time to every call, "sends" what the machine returns by recording it,
and hands replies built with the server-side ``packet.build_reply`` back in.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
from typing import Any

import pytest

from probe.conversation import Conversation
from probe.methods import MethodError, RoundPayload
from probe.outcome import Outcome
from probe.radius import packet as pk
from probe.radius.transport import Disposition, RetryPolicy
from tests.helpers import Endless, pap

SECRET = b"radius-probe-lab"
SERVER = ("192.0.2.1", 1812)
NAS_IP = "192.0.2.10"
T0 = 1000.0
POLICY = RetryPolicy(timeout_s=2.0, retries=2, listen_s=10.0)  # sends at 0, 2, 4; client deadline 6; listen to 10


def counter_random() -> Any:
    """Deterministic, distinct Request Authenticators (injected instead of os.urandom)."""
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


class Wire:
    """A fake driver: Identifiers from ``idents``, time only when told, datagrams recorded."""

    def __init__(self, cfg: Any, method: Any = None, *, idents: list[int] | None = None, urandom: Any = None) -> None:
        self.conv = Conversation(cfg, method, nas_ip=NAS_IP, urandom=urandom or counter_random())
        self.now = T0
        self.sent: list[tuple[float, bytes]] = []
        self.idents = iter(idents if idents is not None else range(7, 256))
        self.previous: dict[int, pk.Packet] = {}
        self.freed: list[tuple[int, pk.Packet | None]] = []
        self.in_use: set[int] = set()
        self.conv.start(self.now)
        self.pump()

    def _collect(self) -> None:
        for ident, request in self.conv.released():
            assert ident in self.in_use, "an Identifier released twice or never handed out"
            self.in_use.discard(ident)
            self.freed.append((ident, request))
            if request is not None:
                self.previous[ident] = request

    def pump(self) -> None:
        """Do what the machine asks at ``now``: give Identifiers, send what is due."""
        for _ in range(1000):  # bounded: a machine that never stops asking is a bug
            self._collect()
            if self.conv.done:
                return
            if self.conv.wants_identifier:
                ident = next(self.idents)
                self.in_use.add(ident)
                self.conv.begin_round(ident, self.previous.get(ident))
                continue
            data = self.conv.poll(self.now)
            self._collect()
            if data is None:
                return
            self.sent.append((self.now, data))
        raise AssertionError("the machine kept asking")

    def at(self, t: float) -> None:
        """Let the clock reach T0 + t (the driver's timer fired, or it just looked)."""
        self.now = T0 + t
        self.pump()

    def run_timers(self, limit: int = 20) -> None:
        """Nothing arrives: fire every timer until the conversation ends."""
        for _ in range(limit):
            if self.conv.done:
                return
            deadline = self.conv.next_deadline
            assert deadline is not None and deadline > self.now
            self.now = deadline
            self.pump()
        raise AssertionError("timers never ended the conversation")

    @property
    def request(self) -> pk.Packet:
        return pk.parse_packet(self.sent[-1][1])

    def answer(self, t: float, code: int, attrs: list[pk.Attr] | None = None, *, secret: bytes = SECRET,
               to: pk.Packet | None = None, raw: bytes | None = None, ma: bool = True) -> Disposition:
        self.now = T0 + t
        data = raw if raw is not None else pk.build_reply(code, to or self.request, attrs or [], secret,
                                                          message_authenticator=ma)
        disposition = self.conv.receive(data, self.now)
        self.pump()
        return disposition

    @property
    def outcome(self) -> Outcome:
        assert self.conv.done
        return self.conv.outcome


def cfg(user: str = "alice", **kw: Any) -> Any:
    kw.setdefault("policy", POLICY)
    return pap(SERVER, user, password="Passw0rd!", secret=SECRET.decode(), **kw)


def password_of(request: pk.Packet) -> bytes:
    hidden = request.get(pk.USER_PASSWORD)
    assert hidden is not None
    return pk.decrypt_user_password(hidden, SECRET, request.authenticator)


# ---------------------------------------------------------------------------


def test_pap_accept_one_round() -> None:
    w = Wire(cfg())
    assert [t for t, _ in w.sent] == [T0] and not w.conv.done
    req = w.request
    assert req.code == pk.ACCESS_REQUEST and req.identifier == 7
    assert req.attributes[0][0] == pk.MESSAGE_AUTHENTICATOR
    assert pk.request_message_authenticator(req, SECRET) == "valid"
    assert password_of(req) == b"Passw0rd!" and req.get(pk.USER_NAME) == b"alice"
    assert req.get(pk.STATE) is None
    assert req.get(4) == bytes((192, 0, 2, 10))  # NAS-IP-Address: the address the driver gave

    assert w.answer(0.25, pk.ACCESS_ACCEPT, [(pk.REPLY_MESSAGE, b"welcome")]) is Disposition.ACCEPTED
    o = w.outcome
    assert (o.result, o.error_kind, o.round_trips, o.retransmissions) == ("accept", None, 1, 0)
    assert o.final_response_s == pytest.approx(0.25) and o.duration_s == pytest.approx(0.25)
    assert o.message_authenticator == "valid" and o.reply_message == "welcome" and not o.late
    assert o.reply_attributes == {"Reply-Message": ["welcome"]}
    assert [(a.round, a.sent_s, a.answered_s, a.code) for a in o.attempts] == [(1, 0.0, pytest.approx(0.25),
                                                                                  "Access-Accept")]
    assert w.freed == [(7, req)] and not w.in_use
    assert o.diagnosis == [] and not o.expectation_met  # not judged: judging is the driver-level judge's


def test_pap_reject_and_an_unsigned_reply() -> None:
    w = Wire(cfg("bob"))
    w.answer(0.1, pk.ACCESS_REJECT, [(pk.REPLY_MESSAGE, b"nope")], ma=False)
    o = w.outcome
    assert (o.result, o.reply_message, o.message_authenticator) == ("reject", "nope", "absent")


def test_challenge_with_otp_round() -> None:
    w = Wire(cfg("dave", otp="123456"))
    first = w.request
    w.answer(0.5, pk.ACCESS_CHALLENGE, [(pk.STATE, b"otp-state-1"), (pk.REPLY_MESSAGE, b"code?")])
    assert not w.conv.done and len(w.sent) == 2 and w.sent[1][0] == T0 + 0.5
    second = w.request
    assert second.identifier == 8 and second.authenticator != first.authenticator  # a fresh Request Authenticator
    assert second.get(pk.STATE) == b"otp-state-1" and password_of(second) == b"123456"
    assert second.attributes[0][0] == pk.MESSAGE_AUTHENTICATOR
    assert w.freed == [(7, first)]  # round 1's Identifier is free again

    w.answer(0.8, pk.ACCESS_ACCEPT)
    o = w.outcome
    assert (o.result, o.round_trips, o.primary_auth_done) == ("accept", 2, True)
    assert o.final_response_s == pytest.approx(0.3)  # the final round, from its first transmission
    assert o.reply_message is None  # the final reply's, not round 1's
    assert [a.round for a in o.attempts] == [1, 2] and [a.code for a in o.attempts] == ["Access-Challenge",
                                                                                          "Access-Accept"]


def test_challenge_without_otp_ends_as_challenge() -> None:
    w = Wire(cfg("dave"))
    w.answer(0.2, pk.ACCESS_CHALLENGE, [(pk.STATE, b"s")])
    o = w.outcome
    assert (o.result, o.round_trips, len(w.sent)) == ("challenge", 1, 1)


def test_retransmissions_are_byte_identical_and_timed_by_the_policy() -> None:
    w = Wire(cfg())
    assert w.conv.next_deadline == T0 + 2.0
    w.at(1.999)
    assert len(w.sent) == 1  # not due yet
    w.run_timers()
    o = w.outcome
    assert [t - T0 for t, _ in w.sent] == [0.0, 2.0, 4.0]
    assert len({data for _, data in w.sent}) == 1
    assert (o.result, o.retransmissions, o.final_response_s) == ("discard", 2, None)
    assert [(a.retransmission, a.sent_s) for a in o.attempts] == [(0, 0.0), (1, 2.0), (2, 4.0)]
    assert o.duration_s == pytest.approx(10.0)  # listened to the end of listen_s
    assert o.client_timeout_s == 6.0


def test_retransmission_timer_counts_from_the_actual_send() -> None:
    w = Wire(cfg())
    w.at(3.0)  # the driver woke late (a busy loop): it retransmits now, and the next falls 2 s later
    assert [t - T0 for t, _ in w.sent] == [0.0, 3.0] and w.conv.next_deadline == T0 + 5.0


def test_late_answer_is_accepted_and_marked_late() -> None:
    w = Wire(cfg(policy=RetryPolicy(timeout_s=1.0, retries=1, listen_s=5.0)))
    w.at(1.0)
    assert len(w.sent) == 2 and w.conv.next_deadline == T0 + 5.0  # no retries left: listening only
    w.answer(3.0, pk.ACCESS_ACCEPT)
    o = w.outcome
    assert (o.result, o.late, o.retransmissions) == ("accept", True, 1)
    assert o.final_response_s == pytest.approx(3.0)
    assert o.attempts[-1].late and not o.attempts[0].late


def test_an_answer_at_the_client_deadline_is_not_late() -> None:
    w = Wire(cfg(policy=RetryPolicy(timeout_s=1.0, retries=0, listen_s=5.0)))
    w.answer(1.0, pk.ACCESS_ACCEPT)
    assert not w.outcome.late


def test_a_late_round_marks_the_conversation_late_whatever_follows() -> None:
    w = Wire(cfg("dave", otp="123456", policy=RetryPolicy(timeout_s=1.0, retries=0, listen_s=5.0)))
    w.answer(2.0, pk.ACCESS_CHALLENGE, [(pk.STATE, b"s")])
    w.answer(2.1, pk.ACCESS_ACCEPT)
    o = w.outcome
    assert o.result == "accept" and o.late and [a.late for a in o.attempts] == [True, False]


def test_invalid_authenticator_is_ignored_then_the_valid_reply_counts() -> None:
    w = Wire(cfg())
    assert w.answer(0.1, pk.ACCESS_REJECT, secret=b"spoofer") is Disposition.IGNORED
    assert not w.conv.done
    assert w.answer(0.2, pk.ACCESS_ACCEPT) is Disposition.ACCEPTED
    o = w.outcome
    assert (o.result, o.error_kind) == ("accept", None)
    assert o.attempts[-1].ignored == ["0.100s bad_authenticator: Response Authenticator does not match "
                                      "(wrong shared secret?)"]


def test_only_invalid_replies_end_as_bad_authenticator() -> None:
    w = Wire(cfg())
    w.answer(0.1, pk.ACCESS_ACCEPT, secret=b"other-secret")
    w.run_timers()
    o = w.outcome
    assert (o.result, o.error_kind) == ("error", "bad_authenticator")
    assert "Response Authenticator" in (o.error_detail or "")
    assert o.retransmissions == 2  # an invalid reply does not stop the retransmissions either
    assert "other-secret" not in o.to_json() and SECRET.decode() not in o.to_json()


def test_broken_message_authenticator_then_silence_is_bad_authenticator() -> None:
    w = Wire(cfg())
    raw = bytearray(pk.build_reply(pk.ACCESS_ACCEPT, w.request, [], SECRET))
    raw[22] ^= 0xFF  # break the Message-Authenticator, then re-sign the Response Authenticator
    raw[4:20] = hashlib.md5(bytes(raw[:4]) + w.request.authenticator + bytes(raw[20:]) + SECRET).digest()
    assert w.answer(0.1, 0, raw=bytes(raw)) is Disposition.IGNORED
    w.run_timers()
    assert (w.outcome.error_kind, w.outcome.error_detail) == (
        "bad_authenticator", "Message-Authenticator in the reply does not verify")


def test_only_malformed_replies_end_as_malformed() -> None:
    w = Wire(cfg())
    body = b"\x12\x20short"  # claims 32 bytes, carries 7
    w.answer(0.1, 0, raw=struct.pack("!BBH", 2, w.request.identifier, 20 + len(body)) + bytes(16) + body)
    w.run_timers()
    o = w.outcome
    assert (o.result, o.error_kind) == ("error", "malformed") and "claims 32 bytes" in (o.error_detail or "")


def test_reply_for_another_identifier_is_a_stray() -> None:
    w = Wire(cfg())
    other = pk.build_reply(pk.ACCESS_ACCEPT, pk.Packet(pk.ACCESS_REQUEST, 99, bytes(16)), [], SECRET)
    assert w.answer(0.1, 0, raw=other) is Disposition.STRAY
    assert w.answer(0.1, 0, raw=b"\x02") is Disposition.STRAY  # too short to carry an Identifier
    w.answer(0.2, pk.ACCESS_ACCEPT)
    assert w.outcome.result == "accept" and w.outcome.attempts[-1].ignored == []


def test_straggling_answer_to_the_identifiers_previous_request_is_a_stray() -> None:
    # The driver reuses Identifier 7 for round 2 and hands the machine round 1's request as ``previous``.
    w = Wire(cfg("dave", otp="123456"), idents=[7, 7])
    first = w.request
    w.answer(0.5, pk.ACCESS_CHALLENGE, [(pk.STATE, b"s")])
    assert w.request.identifier == 7 and w.request.authenticator != first.authenticator
    # A second answer to round 1 (to its retransmission, say) arrives during round 2: not an attack.
    assert w.answer(0.6, pk.ACCESS_CHALLENGE, [(pk.STATE, b"s")], to=first) is Disposition.STRAY
    w.answer(0.7, pk.ACCESS_ACCEPT)
    o = w.outcome
    assert o.result == "accept" and o.attempts[-1].ignored == []


def test_without_previous_an_answer_to_an_older_request_is_ignored() -> None:
    w = Wire(cfg("dave", otp="123456"), idents=[7, 7])
    first = w.request
    w.answer(0.5, pk.ACCESS_CHALLENGE, [(pk.STATE, b"s")])
    w.previous.clear()
    w.conv.round.previous = None  # type: ignore[union-attr]  # as if the driver had not kept it
    assert w.answer(0.6, pk.ACCESS_CHALLENGE, to=first) is Disposition.IGNORED
    w.run_timers()
    assert (w.outcome.error_kind, w.outcome.round_trips) == ("bad_authenticator", 2)


def test_second_answer_after_the_round_is_a_duplicate() -> None:
    w = Wire(cfg())
    req = w.request
    w.answer(0.1, pk.ACCESS_ACCEPT)
    assert w.answer(0.2, pk.ACCESS_REJECT, to=req) is Disposition.DUPLICATE
    assert w.outcome.result == "accept"


def test_unreachable_ends_the_round() -> None:
    w = Wire(cfg())
    w.now = T0 + 0.01
    w.conv.unreachable("ICMP port unreachable: nothing listens there", w.now)
    w.pump()
    o = w.outcome
    assert (o.result, o.error_kind, o.error_detail) == ("error", "unreachable",
                                                        "ICMP port unreachable: nothing listens there")
    assert o.duration_s == pytest.approx(0.01) and o.final_response_s is None and w.freed[0][0] == 7


def test_a_reply_after_the_listen_window_is_discarded() -> None:
    w = Wire(cfg())
    req = w.request
    w.run_timers()
    assert w.outcome.result == "discard"
    assert w.answer(10.5, pk.ACCESS_ACCEPT, to=req) is Disposition.DUPLICATE
    assert w.outcome.result == "discard" and w.outcome.duration_s == pytest.approx(10.0)


def test_a_reply_just_before_the_listen_window_ends_counts() -> None:
    w = Wire(cfg())
    w.at(2.0)
    w.at(4.0)
    assert w.conv.next_deadline == T0 + 10.0
    w.answer(9.99, pk.ACCESS_ACCEPT)
    assert (w.outcome.result, w.outcome.late, w.outcome.retransmissions) == ("accept", True, 2)




def test_round_limit_stops_an_endless_server() -> None:
    method = Endless()
    w = Wire(cfg(max_rounds=3), method)
    for i in range(3):
        w.answer(0.1 * (i + 1), pk.ACCESS_CHALLENGE, [(pk.EAP_MESSAGE, b"\x01\x01\x00\x05\x01")])
    o = w.outcome
    assert (o.result, o.error_kind, o.round_trips) == ("error", "eap", 3)
    assert o.error_detail == "the server kept challenging: stopped after 3 rounds"
    assert len(w.sent) == 3 and [i for i, _ in w.freed] == [7, 8, 9] and not w.in_use
    assert method.reported == 1


def test_time_is_taken_before_the_send() -> None:
    """The driver reads the clock, the machine stamps that time, then the (slow) send happens."""
    conv = Conversation(cfg(), nas_ip=NAS_IP, urandom=counter_random())
    conv.start(T0)
    conv.begin_round(1)
    data = conv.poll(T0 + 0.5)  # the time read just before sendto
    assert data is not None  # ... and sendto itself took until T0 + 0.9 (preempted)
    reply = pk.build_reply(pk.ACCESS_ACCEPT, pk.parse_packet(data), [], SECRET)
    conv.receive(reply, T0 + 1.5)
    o = conv.outcome
    assert o.final_response_s == pytest.approx(1.0) and o.attempts[0].sent_s == pytest.approx(0.5)


class Crashing(Endless):
    def __init__(self, where: str) -> None:
        super().__init__()
        self.where = where

    def start(self) -> RoundPayload:
        if self.where == "start":
            raise RuntimeError("simulated bug in start")
        return super().start()

    def on_challenge(self, reply: pk.Packet) -> RoundPayload | None:
        if self.where == "challenge":
            raise KeyError("simulated bug in on_challenge")
        raise MethodError("tls", "the TLS engine refused")


def test_a_bug_in_the_method_before_any_send_is_an_internal_outcome() -> None:
    method = Crashing("start")
    w = Wire(cfg(), method)
    o = w.outcome
    assert (o.result, o.error_kind) == ("error", "internal") and "simulated bug in start" in (o.error_detail or "")
    assert w.sent == [] and w.freed == [] and method.reported == 1


def test_a_bug_in_the_middle_is_an_internal_outcome_and_frees_the_identifier() -> None:
    w = Wire(cfg(), Crashing("challenge"))
    w.answer(0.3, pk.ACCESS_CHALLENGE, [(pk.EAP_MESSAGE, b"\x01\x01\x00\x05\x01")])
    o = w.outcome
    assert (o.result, o.error_kind) == ("error", "internal") and "KeyError" in (o.error_detail or "")
    assert o.round_trips == 1 and not w.in_use and o.duration_s == pytest.approx(0.3)


def test_a_method_error_becomes_its_error_kind() -> None:
    w = Wire(cfg(), Crashing("other"))
    w.answer(0.3, pk.ACCESS_CHALLENGE, [(pk.EAP_MESSAGE, b"\x01\x01\x00\x05\x01")])
    assert (w.outcome.error_kind, w.outcome.error_detail) == ("tls", "the TLS engine refused")


def test_a_request_that_cannot_be_built_is_internal_and_frees_the_identifier() -> None:
    w = Wire(cfg(), urandom=lambda n: b"short")  # a broken random source: not a 16-byte authenticator
    o = w.outcome
    assert (o.result, o.error_kind) == ("error", "internal") and "16 bytes" in (o.error_detail or "")
    assert w.freed == [(7, None)] and w.sent == []


def test_an_abort_from_the_driver_ends_in_an_outcome() -> None:
    w = Wire(cfg())
    w.conv.abort("driver bug", T0 + 1)
    w.pump()
    assert (w.outcome.error_kind, w.outcome.error_detail, w.outcome.duration_s) == ("internal", "driver bug", 1.0)
    assert w.freed == [(7, pk.parse_packet(w.sent[0][1]))]


def test_begin_round_without_a_waiting_round_is_refused() -> None:
    w = Wire(cfg())
    with pytest.raises(RuntimeError):
        w.conv.begin_round(9)


@pytest.mark.parametrize("module", ["probe/conversation.py", "probe/radius/transport.py"])
def test_the_machines_import_no_io_and_no_clock(module: str) -> None:
    import ast
    from pathlib import Path

    tree = ast.parse((Path(__file__).resolve().parents[2] / module).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 and node.level == 0}
    assert not imported & {"asyncio", "socket", "select", "selectors", "time", "threading"}, imported


def test_importing_the_machine_and_the_blocking_driver_loads_no_event_loop() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])  # this checkout's probe, not an installed one
    env = {**os.environ, "PYTHONPATH": root}
    code = ("import sys, probe.conversation, probe.drivers.blocking; "
            "print(sorted(m for m in ('asyncio', 'probe.drivers.aio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                         env=env, cwd=root)
    assert out.stdout.strip() == "[]"


def test_no_retransmission_once_the_retries_are_spent() -> None:
    w = Wire(cfg())
    w.at(2.0)
    w.at(4.0)
    for t in (6.0, 7.5, 9.99):  # a driver that wakes more often than asked sends nothing more
        w.at(t)
    assert [t - T0 for t, _ in w.sent] == [0.0, 2.0, 4.0] and not w.conv.done
    w.at(10.0)
    assert w.outcome.result == "discard"


def test_a_later_round_that_cannot_be_built_ends_when_it_failed() -> None:
    calls = itertools.count()
    w = Wire(cfg("dave", otp="123456"), urandom=lambda n: bytes(n) if next(calls) == 0 else b"short")
    w.answer(0.5, pk.ACCESS_CHALLENGE, [(pk.STATE, b"s")])
    o = w.outcome
    assert (o.error_kind, o.round_trips, o.duration_s) == ("internal", 2, pytest.approx(0.5))
    assert [i for i, _ in w.freed] == [7, 8] and w.freed[1][1] is None and not w.in_use


def test_a_bare_round_after_its_answer_reports_duplicates() -> None:
    from probe.radius.transport import Round

    request = pk.build_request(3, bytes(range(16)), [(pk.USER_NAME, b"alice")], SECRET)
    rnd = Round(request, POLICY, SECRET)
    assert rnd.poll(0.0) == request.raw and rnd.next_deadline == 2.0
    reply = pk.build_reply(pk.ACCESS_ACCEPT, request, [], SECRET)
    assert rnd.receive(reply, 0.5) is Disposition.ACCEPTED and rnd.done
    assert rnd.receive(reply, 0.6) is Disposition.DUPLICATE and rnd.exchange.answered == 0.5
    assert rnd.poll(3.0) is None and rnd.next_deadline is None and rnd.exchange.retransmissions == 0
    assert "radius-probe-lab" not in repr(rnd)
