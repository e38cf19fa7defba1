"""Status-Server (RFC 5997) and Accounting-Request (RFC 2866) on the wire: builders, verification, the machine."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from probe.conversation import Conversation
from probe.model import Module, ProbeConfig, Secret
from probe.radius import packet as pk
from probe.radius.transport import RetryPolicy

SECRET = b"acct-secret"
AUTH = bytes(range(16))


def test_accounting_request_authenticator_is_rfc2866() -> None:
    attrs = [(pk.USER_NAME, b"alice"), (40, (1).to_bytes(4, "big")), (44, b"s-1")]
    req = pk.build_request(7, AUTH, attrs, SECRET, code=pk.ACCOUNTING_REQUEST)
    body = pk.encode_attributes(attrs)
    header = bytes([4, 7]) + (20 + len(body)).to_bytes(2, "big")
    assert req.authenticator == hashlib.md5(header + b"\0" * 16 + body + SECRET).digest()
    assert req.raw == header + req.authenticator + body  # no Message-Authenticator, the random one unused
    assert pk.accounting_request_valid(pk.parse_packet(req.raw), SECRET)
    assert not pk.accounting_request_valid(pk.parse_packet(req.raw), b"other")


def test_status_server_is_always_signed() -> None:
    req = pk.build_request(3, AUTH, [(32, b"nas")], SECRET, message_authenticator=False, code=pk.STATUS_SERVER)
    assert req.raw[0] == pk.STATUS_SERVER and req.attributes[0][0] == pk.MESSAGE_AUTHENTICATOR
    zeroed = req.raw[:22] + b"\0" * 16 + req.raw[38:]
    assert req.attributes[0][1] == hmac.new(SECRET, zeroed, hashlib.md5).digest()
    assert pk.request_message_authenticator(pk.parse_packet(req.raw), SECRET) == "valid"


@pytest.mark.parametrize("request_code, reply_code, ok", [
    (pk.ACCOUNTING_REQUEST, pk.ACCOUNTING_RESPONSE, True),
    (pk.ACCOUNTING_REQUEST, pk.ACCESS_ACCEPT, False),
    (pk.STATUS_SERVER, pk.ACCESS_ACCEPT, True),
    (pk.STATUS_SERVER, pk.ACCOUNTING_RESPONSE, True),
    (pk.STATUS_SERVER, pk.ACCESS_CHALLENGE, False),
    (pk.ACCESS_REQUEST, pk.ACCOUNTING_RESPONSE, False),
])
def test_reply_codes_per_request(request_code: int, reply_code: int, ok: bool) -> None:
    req = pk.build_request(9, AUTH, [(32, b"nas")], SECRET, code=request_code)
    reply = pk.build_reply(reply_code, req, [], SECRET, message_authenticator=False)
    if ok:
        assert pk.verify_reply(reply, req, SECRET).code == reply_code
    else:
        with pytest.raises(pk.PacketError) as exc:
            pk.verify_reply(reply, req, SECRET)
        assert exc.value.kind == "malformed" and "does not answer" in exc.value.detail


def test_accounting_response_with_wrong_secret_does_not_verify() -> None:
    req = pk.build_request(9, AUTH, [(40, (1).to_bytes(4, "big"))], SECRET, code=pk.ACCOUNTING_REQUEST)
    reply = pk.build_reply(pk.ACCOUNTING_RESPONSE, req, [], b"wrong", message_authenticator=False)
    with pytest.raises(pk.PacketError) as exc:
        pk.verify_reply(reply, req, SECRET)
    assert exc.value.kind == "bad_authenticator"


def _conversation(method: str, **kw: object) -> Conversation:
    module = Module(name=method, method=method, identity="alice", policy=RetryPolicy(timeout_s=1, retries=0),
                    **kw)  # type: ignore[arg-type]
    return Conversation(ProbeConfig(module, ("127.0.0.1", 1813), Secret(SECRET)), nas_ip="127.0.0.1")


def _answer(conv: Conversation, code: int, now: float) -> None:
    if conv.wants_identifier:
        conv.begin_round(len(conv.outcome.attempts) % 256)
    data = conv.poll(now)
    assert data is not None
    req = pk.parse_packet(data)
    conv.receive(pk.build_reply(code, req, [], SECRET, message_authenticator=False), now + 0.01)


def test_accounting_session_is_three_acknowledged_records() -> None:
    conv = _conversation("accounting")
    conv.start(0.0)
    sent = []
    for i in range(3):
        conv.begin_round(i)
        data = conv.poll(i / 10)
        assert data is not None
        req = pk.parse_packet(data)
        assert req.code == pk.ACCOUNTING_REQUEST and pk.accounting_request_valid(req, SECRET)
        sent.append((req.get(40), req.get(44), req.get(pk.USER_NAME), req.get(pk.MESSAGE_AUTHENTICATOR)))
        conv.receive(pk.build_reply(pk.ACCOUNTING_RESPONSE, req, [], SECRET, message_authenticator=False), i / 10 + 0.01)
    assert conv.done and conv.outcome.result == "accept" and conv.outcome.round_trips == 3
    assert [int.from_bytes(s[0], "big") for s in sent] == [1, 3, 2]  # Start, Interim-Update, Stop
    assert len({s[1] for s in sent}) == 1 and sent[0][2] == b"alice" and sent[0][3] is None
    assert conv.outcome.accounting == {"session_id": sent[0][1].decode(), "records": ["Start", "Interim-Update", "Stop"],
                                       "acknowledged": ["Start", "Interim-Update", "Stop"]}
    assert conv.outcome.message_authenticator is None  # accounting has no Blast-RADIUS posture to judge


def test_accounting_one_record_when_the_module_sets_the_status_type() -> None:
    conv = _conversation("accounting", attrs=[("Acct-Status-Type", "Stop"), ("Acct-Session-Id", "mine")])
    conv.start(0.0)
    conv.begin_round(0)
    data = conv.poll(0.0)
    assert data is not None
    req = pk.parse_packet(data)
    assert pk.find_all(req.attributes, 40) == [(2).to_bytes(4, "big")] and pk.find_all(req.attributes, 44) == [b"mine"]
    conv.receive(pk.build_reply(pk.ACCOUNTING_RESPONSE, req, [], SECRET, message_authenticator=False), 0.1)
    assert conv.done and conv.outcome.result == "accept" and conv.outcome.round_trips == 1


def test_status_server_carries_no_user_name_and_few_nas_attributes() -> None:
    conv = _conversation("status-server")
    conv.start(0.0)
    conv.begin_round(5)
    data = conv.poll(0.0)
    assert data is not None
    req = pk.parse_packet(data)
    assert req.code == pk.STATUS_SERVER and req.get(pk.USER_NAME) is None
    assert {t for t, _ in req.attributes} == {pk.MESSAGE_AUTHENTICATOR, 4, 32}
    conv.receive(pk.build_reply(pk.ACCESS_ACCEPT, req, [], SECRET), 0.2)
    assert conv.outcome.result == "accept" and conv.outcome.message_authenticator == "valid"


def test_reliable_transport_waits_once_and_the_deadline_may_start_at_the_connection() -> None:
    """RadSec: no retransmission (RFC 6614 2.2), one wait of timeout x (retries + 1); the deadline counts setup."""
    module = Module(name="pap", method="pap", identity="alice", password=Secret(b"pw"),
                    policy=RetryPolicy(timeout_s=1.0, retries=2))
    conv = Conversation(ProbeConfig(module, ("127.0.0.1", 2083), Secret(b"radsec")), nas_ip="127.0.0.1",
                        reliable=True)
    conv.start(0.0, deadline_from=-2.5)  # the connection took 2.5 s of the 3 s deadline
    conv.begin_round(0)
    assert conv.poll(0.0) is not None
    assert conv.next_deadline == 0.5 and conv.poll(0.4) is None  # no retransmission at 1 s, cut at 0.5 s
    conv.poll(0.5)
    assert conv.done and conv.outcome.retransmissions == 0 and conv.outcome.result in ("error", "discard")
    assert RetryPolicy(timeout_s=1.0, retries=2).reliable() == RetryPolicy(timeout_s=3.0, retries=0)
