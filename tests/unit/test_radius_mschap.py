"""RADIUS MS-CHAPv2 (RFC 2548) and CHAP attributes, and the probe's methods over them, against RFC vectors.

RFC 2759 9.2 (User / clientPass) gives the NT-Response and the authenticator response; RFC 3079
3.5.3 the 128-bit send start key, which is the server's MS-MPPE-Send-Key (the server's own view,
RFC 2548 2.4.2). Both roles (the probe's method and the emulator's side) are checked against
each other and against the vectors, with bytes only.
"""

from __future__ import annotations

import hashlib
import struct

import pytest

from probe.method_mschapv2 import ChapMethod, MschapV2RadiusMethod, make_chap, make_mschapv2
from probe.methods import MethodError, spec
from probe.model import ProbeConfig, Secret
from probe.outcome import ErrorKind, Outcome
from probe.radius import mschap
from probe.radius import packet as pk

USER = "User"
PASSWORD = "clientPass"
AUTH_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
AUTH_RESPONSE = b"S=407A5589115FD0D6209F510FE9C04566932CDA56"
SEND_START_KEY_128 = bytes.fromhex("8B7CDC149B993A1BA118CB153F56DCCB")  # RFC 3079 3.5.3
SECRET = b"s3cret"
IDENT = 7


def scripted(*chunks: bytes):  # type: ignore[no-untyped-def]
    """A random source that hands out the given bytes in order (the method asks 1, 16, 16)."""
    data = bytearray(b"".join(chunks))

    def take(n: int) -> bytes:
        out = bytes(data[:n])
        del data[:n]
        assert len(out) == n
        return out

    return take


def method() -> MschapV2RadiusMethod:
    return MschapV2RadiusMethod(USER, PASSWORD, SECRET, scripted(bytes([IDENT]), AUTH_CHALLENGE, PEER_CHALLENGE))


def request_of(m: MschapV2RadiusMethod) -> pk.Packet:
    attrs = [(pk.USER_NAME, USER.encode()), *m.start().attributes]
    return pk.build_request(1, b"A" * 16, attrs, SECRET, message_authenticator=True)


def reply(code: int, attrs: list[pk.Attr]) -> pk.Packet:
    return pk.Packet(code, 1, b"\x00" * 16, attrs)


def vendor(vtype: int, value: bytes) -> pk.Attr:
    return pk.vsa(pk.VENDOR_MICROSOFT, vtype, value)


def server_accept(request: pk.Packet, *, password: str = PASSWORD) -> list[pk.Attr]:
    offer = mschap.find_offer(request)
    assert offer is not None
    return mschap.success_attributes(offer, USER, password, SECRET, request.authenticator,
                                     (b"\x80\x01", b"\x80\x02"))


def judge(m: MschapV2RadiusMethod, request: pk.Packet, answer: pk.Packet) -> tuple[Outcome, MethodError | None]:
    o = Outcome(target="t", method="mschapv2", identity=USER)
    try:
        m.on_final(answer, request, o)
    except MethodError as exc:
        return o, exc
    return o, None


# --------------------------------------------------------------------------- the wire layout


def test_request_carries_the_rfc2548_layout_and_the_rfc2759_nt_response() -> None:
    m = method()
    request = request_of(m)
    challenge = pk.find_vendor(request.attributes, pk.VENDOR_MICROSOFT, mschap.MS_CHAP_CHALLENGE)
    response = pk.find_vendor(request.attributes, pk.VENDOR_MICROSOFT, mschap.MS_CHAP2_RESPONSE)
    assert challenge == [AUTH_CHALLENGE]
    assert response == [bytes([IDENT, 0]) + PEER_CHALLENGE + b"\x00" * 8 + NT_RESPONSE]
    assert len(response[0]) == 50 and request.get(pk.USER_PASSWORD) is None


def test_server_side_verifies_and_answers_with_the_rfc_vectors() -> None:
    request = request_of(method())
    offer = mschap.find_offer(request)
    assert offer is not None and mschap.server_verify(offer, USER, PASSWORD)
    assert not mschap.server_verify(offer, USER, "wrong")
    attrs = server_accept(request)
    success = mschap.find_success(reply(pk.ACCESS_ACCEPT, attrs))
    assert success == mschap.Mschap2Success(IDENT, AUTH_RESPONSE, "")
    send, recv = pk.mppe_keys(reply(pk.ACCESS_ACCEPT, attrs), request.authenticator, SECRET) or (b"", b"")
    assert send == SEND_START_KEY_128 and len(recv) == 16 and recv != send
    assert mschap.expected_mppe(PASSWORD, mschap.Mschapv2Request(IDENT, AUTH_CHALLENGE, PEER_CHALLENGE,
                                                                 NT_RESPONSE)) == (send, recv)


def test_chap_password_is_md5_of_ident_password_challenge() -> None:
    challenge = bytes(range(16))
    attrs = mschap.chap_attributes(b"pw", 9, challenge)
    assert attrs == [(3, bytes([9]) + hashlib.md5(b"\x09pw" + challenge).digest()), (60, challenge)]
    request = pk.Packet(pk.ACCESS_REQUEST, 1, b"R" * 16, attrs)
    assert mschap.chap_verify(request, b"pw") and not mschap.chap_verify(request, b"other")
    # Without CHAP-Challenge the Request Authenticator is the challenge (RFC 2865 5.3)
    bare = pk.Packet(pk.ACCESS_REQUEST, 1, challenge, attrs[:1])
    assert mschap.chap_verify(bare, b"pw")
    with pytest.raises(mschap.MschapAttributeError, match="CHAP-Password of 5 bytes"):
        mschap.chap_verify(pk.Packet(pk.ACCESS_REQUEST, 1, challenge, [(3, b"short")]), b"pw")


# --------------------------------------------------------------------------- the probe's method


def test_accept_with_the_right_proof_and_keys_is_clean() -> None:
    m = method()
    request = request_of(m)
    o, problem = judge(m, request, reply(pk.ACCESS_ACCEPT, server_accept(request)))
    assert problem is None and o.mppe == "match" and o.warnings == []


def test_accept_from_a_server_that_does_not_know_the_password_fails_its_proof() -> None:
    m = method()
    request = request_of(m)
    o, problem = judge(m, request, reply(pk.ACCESS_ACCEPT, server_accept(request, password="other")))
    assert problem is not None and problem.kind is ErrorKind.MSCHAPV2
    assert problem.detail.startswith("server failed to prove knowledge of the password")
    assert o.mppe == "mismatch"  # its keys are wrong too, and say so


@pytest.mark.parametrize("attrs, words", [
    ([], "carries no MS-CHAP2-Success"),
    ([vendor(26, bytes([IDENT]) + b"S=" + b"0" * 40)], "authenticator response is wrong"),
    ([vendor(26, bytes([IDENT + 1]) + AUTH_RESPONSE)], "Ident 8 answers no request of ours (7)"),
    ([vendor(26, bytes([IDENT]) + b"S=12")], "needs Ident + 42-octet S="),
    ([vendor(26, bytes([IDENT]) + b"S=" + b"zz" * 20)], "not 'S=' and 40 hex digits"),
    ([vendor(26, bytes([IDENT]) + AUTH_RESPONSE + b"junk")], "unexpected text after the S= value"),
    ([vendor(26, bytes([IDENT]) + AUTH_RESPONSE)] * 2, "2 MS-CHAP2-Success attributes"),
    ([(pk.VENDOR_SPECIFIC, struct.pack("!I", 311) + bytes([26, 60]) + b"x")], "malformed Vendor-Specific"),
])
def test_a_bad_proof_is_a_mschapv2_error_in_words(attrs: list[pk.Attr], words: str) -> None:
    m = method()
    request = request_of(m)
    keys = [a for a in server_accept(request) if a[1][4] != mschap.MS_CHAP2_SUCCESS]
    o, problem = judge(m, request, reply(pk.ACCESS_ACCEPT, attrs + keys))
    assert problem is not None and problem.kind is ErrorKind.MSCHAPV2 and words in problem.detail, problem
    assert problem.detail.startswith("server failed to prove knowledge of the password")
    assert PASSWORD not in problem.detail


def test_an_accept_with_the_proof_but_other_keys_is_mppe_mismatch() -> None:
    m = method()
    request = request_of(m)
    attrs = server_accept(request)
    swapped = [attrs[0], (attrs[1][0], attrs[1][1][:4] + bytes([17]) + attrs[1][1][5:]),
               (attrs[2][0], attrs[2][1][:4] + bytes([16]) + attrs[2][1][5:])]
    o, problem = judge(m, request, reply(pk.ACCESS_ACCEPT, swapped))
    assert problem is not None and problem.kind is ErrorKind.MPPE_MISMATCH and o.mppe == "mismatch"


def test_an_accept_without_keys_is_mppe_absent_with_a_warning() -> None:
    m = method()
    request = request_of(m)
    o, problem = judge(m, request, reply(pk.ACCESS_ACCEPT, server_accept(request)[:1]))
    assert problem is None and o.mppe == "absent" and "cannot encrypt" in o.warnings[0]


@pytest.mark.parametrize("text, detail", [
    (b"E=691 R=0 V=3", "MS-CHAP-Error E=691 (authentication failure (wrong password or unknown user)), no retry"),
    (b"E=691 R=1 C=000102030405060708090A0B0C0D0E0F V=3 M=Authentication rejected",
     "E=691 (authentication failure (wrong password or unknown user)), retry allowed: Authentication rejected"),
    (b"E=646 R=0 V=3", "E=646 (restricted logon hours), no retry"),
    (b"E=647 R=0 V=3", "E=647 (account disabled or locked out), no retry"),
    (b"E=648 R=0 V=3 M=Password expired", "E=648 (password expired), no retry: Password expired"),
    (b"E=649 R=0 V=3", "E=649 (no dial-in permission), no retry"),
    (b"E=1234 R=0 V=3", "E=1234 (unknown error code)"),
])
def test_a_reject_keeps_its_ms_chap_error_in_words(text: bytes, detail: str) -> None:
    m = method()
    request = request_of(m)
    o, problem = judge(m, request, reply(pk.ACCESS_REJECT, [vendor(2, bytes([IDENT]) + text)]))
    assert problem is None and o.eap_detail is not None and detail in o.eap_detail


@pytest.mark.parametrize("value", [b"", bytes([IDENT]), bytes([IDENT]) + b"R=1", bytes([IDENT]) + b"E=abc",
                                   bytes([IDENT]) + b"E=691 E=691", bytes([IDENT]) + b"E=691 C=0102",
                                   bytes([IDENT]) + b"E=691 R=0 C=" + b"zz" * 16, bytes([IDENT]) + b"\xff\xfe=1"])
def test_a_malformed_ms_chap_error_leaves_a_reject_and_a_warning(value: bytes) -> None:
    m = method()
    request = request_of(m)
    o, problem = judge(m, request, reply(pk.ACCESS_REJECT, [vendor(2, value)]))
    assert problem is None and o.eap_detail == "MS-CHAP-Error present but unreadable"
    assert o.warnings and "malformed MS-CHAP-Error" in o.warnings[0]


def test_the_method_never_answers_a_challenge() -> None:
    m = method()
    request_of(m)
    assert m.on_challenge(reply(pk.ACCESS_CHALLENGE, [(pk.STATE, b"s")])) is None


# --------------------------------------------------------------------------- registry and construction


def cfg(name: str, password: bytes | None = b"pw", otp: bytes | None = None) -> ProbeConfig:
    return ProbeConfig(address=("127.0.0.1", 1812), secret=Secret(SECRET), method=name, identity="alice",
                       password=Secret(password) if password is not None else None,
                       otp=Secret(otp) if otp is not None else None)


def test_registry_entries_are_radius_level_password_methods() -> None:
    for name, mppe in (("mschapv2", True), ("chap", False)):
        s = spec(name)
        assert (s.credential, s.eap, s.needs_ca, s.mppe, s.otp, s.reject_code) == (
            "password", False, False, mppe, False, "access_reject")
    assert isinstance(make_mschapv2(cfg("mschapv2")), MschapV2RadiusMethod)
    assert isinstance(make_chap(cfg("chap")), ChapMethod)


@pytest.mark.parametrize("name, kw, words", [
    ("mschapv2", {"password": None}, "needs a password"),
    ("chap", {"password": None}, "needs a password"),
    ("mschapv2", {"password": b"\xff"}, "not valid UTF-8"),
    ("mschapv2", {"password": b"x" * 257}, "256 characters"),
    ("chap", {"password": b"x" * 254}, "253 bytes"),
    ("mschapv2", {"otp": b"123456"}, "cannot carry an OTP"),
])
def test_bad_local_input_is_a_one_line_value_error(name: str, kw: dict[str, bytes | None], words: str) -> None:
    maker = make_mschapv2 if name == "mschapv2" else make_chap
    with pytest.raises(ValueError, match=words):
        maker(cfg(name, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("method, detail, code", [
    ("mschapv2", "MS-CHAP-Error E=648 (password expired), no retry", "account_restricted"),
    ("mschapv2", "MS-CHAP-Error E=646 (restricted logon hours), no retry", "account_restricted"),
    ("mschapv2", "MS-CHAP-Error E=691 (authentication failure (wrong password or unknown user)), no retry",
     "access_reject"),
    ("mschapv2", "MS-CHAP-Error present but unreadable", "access_reject"),
    ("mschapv2", None, "access_reject"),
    ("peap-mschapv2", "MS-CHAPv2 failure E=647 (account disabled): locked", "account_restricted"),
    ("eap-mschapv2", "MS-CHAPv2 failure E=691 (authentication failure)", "eap_credentials_rejected"),
    ("eap-mschapv2", "MS-CHAPv2 failure E=6480 (error)", "eap_credentials_rejected"),
])
def test_an_account_restriction_gets_its_own_diagnosis(method: str, detail: str | None, code: str) -> None:
    from probe.outcome import finalize

    o = Outcome(target="t", method=method, identity="alice", result="reject", eap_detail=detail,
                tls={"server_cert": {"subject": "nps"}} if method == "peap-mschapv2" else None)
    finalize(o)
    assert o.diagnosis[0]["code"] == code and (detail is None or detail in o.diagnosis[0]["text"])
