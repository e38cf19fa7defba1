"""Hostile RADIUS MS-CHAPv2 answers (issue 16): a malformed MS-CHAP2-Success or MS-CHAP-Error is a
classification, never a traceback.

Each case forwards the probe's request to the emulator (which really checks the NT-Response and
computes the answer), then rewrites the Microsoft vendor attributes of its Accept or Reject and
signs the reply again, so only the attribute under test is wrong.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest

from probe.radius import mschap
from probe.radius import packet as pk

from .conftest import DEFAULT_PASSWORD, assert_bounded
from .hostile import Ctx, HostileServer, Send

MS = pk.VENDOR_MICROSOFT


def vendor_type(attr: pk.Attr) -> int | None:
    if attr[0] != pk.VENDOR_SPECIFIC or len(attr[1]) < 6 or struct.unpack("!I", attr[1][:4])[0] != MS:
        return None
    return attr[1][4]


def rewrite(vtype: int, new: Callable[[bytes], list[pk.Attr]]) -> Callable[[Ctx], Any]:
    """Forward; replace the upstream's vendor attribute ``vtype`` by ``new(its value)`` and sign again."""

    def case(ctx: Ctx) -> Any:
        if ctx.reply is None:
            return None
        up = ctx.upstream_packet()
        attrs: list[pk.Attr] = []
        for attr in up.attributes:
            if attr[0] == pk.MESSAGE_AUTHENTICATOR:
                continue
            attrs += new(attr[1][6:]) if vendor_type(attr) == vtype else [attr]
        return [Send(ctx.resign(attrs))]

    return case


def v(vtype: int, value: bytes) -> pk.Attr:
    return pk.vsa(MS, vtype, value)


def raw_vsa(body: bytes) -> pk.Attr:
    return (pk.VENDOR_SPECIFIC, struct.pack("!I", MS) + body)


S = mschap.MS_CHAP2_SUCCESS
E = mschap.MS_CHAP_ERROR

# name -> (replacement of MS-CHAP2-Success in an Accept, error_kind)
SUCCESS_CASES: dict[str, tuple[Callable[[bytes], list[pk.Attr]], str]] = {
    "success removed": (lambda value: [], "mschapv2"),
    "success empty": (lambda value: [v(S, b"")], "mschapv2"),
    "success ident only": (lambda value: [v(S, value[:1])], "mschapv2"),
    "success truncated": (lambda value: [v(S, value[:20])], "mschapv2"),
    "success not hex": (lambda value: [v(S, value[:3] + b"G" * 40)], "mschapv2"),
    "success lower-case S": (lambda value: [v(S, value[:1] + b"s=" + value[3:])], "mschapv2"),
    "success wrong value": (lambda value: [v(S, value[:3] + b"0" * 40)], "mschapv2"),
    "success wrong ident": (lambda value: [v(S, bytes([value[0] ^ 1]) + value[1:])], "mschapv2"),
    "success trailing junk": (lambda value: [v(S, value + b"\x00\xff" * 50)], "mschapv2"),
    "success twice": (lambda value: [v(S, value), v(S, value)], "mschapv2"),
    "success binary": (lambda value: [v(S, bytes(range(256))[:200])], "mschapv2"),
    "success vsa length beyond body": (lambda value: [raw_vsa(bytes([S, 200]) + value)], "malformed"),
    "success vsa length 0": (lambda value: [raw_vsa(bytes([S, 0]) + value)], "malformed"),
}

# name -> replacement of MS-CHAP-Error in a Reject (the reject stays a reject)
ERROR_CASES: dict[str, Callable[[bytes], list[pk.Attr]]] = {
    "error empty": lambda value: [v(E, b"")],
    "error ident only": lambda value: [v(E, value[:1])],
    "error no E": lambda value: [v(E, value[:1] + b"R=0 V=3")],
    "error E not a number": lambda value: [v(E, value[:1] + b"E=six R=0 V=3")],
    "error duplicate field": lambda value: [v(E, value[:1] + b"E=691 E=648 R=0")],
    "error short C": lambda value: [v(E, value[:1] + b"E=691 R=1 C=00 V=3")],
    "error C not hex": lambda value: [v(E, value[:1] + b"E=691 R=1 C=" + b"x" * 32 + b" V=3")],
    "error binary": lambda value: [v(E, value[:1] + bytes(range(1, 200)))],
    "error invalid utf-8": lambda value: [v(E, value[:1] + b"E=691 R=0 V=3 M=\xff\xfe\xfd")],
    "error huge message": lambda value: [v(E, value[:1] + b"E=691 R=0 V=3 M=" + b"A" * 230)],
    "error twice": lambda value: [v(E, value), v(E, value)],
    "error vsa length beyond body": lambda value: [raw_vsa(bytes([E, 250]) + value)],
}


@pytest.mark.parametrize("name", list(SUCCESS_CASES))
def test_malformed_ms_chap2_success_is_classified(hostile: Callable[..., HostileServer], probe_run: Any,
                                                  robust: Any, emulator_thread: Any, name: str) -> None:
    new, kind = SUCCESS_CASES[name]
    server = hostile(rewrite(S, new), upstream=emulator_thread)
    o, _ = probe_run("mschapv2", server.address)
    robust("mschapv2", name, o)
    assert_bounded(o)
    if kind == "malformed":  # a Vendor-Specific whose length lies: the reply does not parse
        assert (o.result, o.error_kind) == ("error", "malformed"), o.to_json()
        assert o.diagnosis[0]["code"] == "malformed_reply"
    else:
        assert (o.result, o.error_kind) == ("error", kind), o.to_json()
        assert o.error_detail and o.error_detail.startswith("server failed to prove knowledge of the password")
        assert o.diagnosis and o.diagnosis[0]["code"] == "mschapv2_server_proof_failed"
    assert DEFAULT_PASSWORD not in o.to_json()


@pytest.mark.parametrize("name", list(ERROR_CASES))
def test_malformed_ms_chap_error_is_classified(hostile: Callable[..., HostileServer], probe_run: Any,
                                               robust: Any, emulator_thread: Any, name: str) -> None:
    server = hostile(rewrite(E, ERROR_CASES[name]), upstream=emulator_thread)
    o, _ = probe_run("mschapv2", server.address, password="wrong-password", expect="reject")
    robust("mschapv2", name, o)
    assert_bounded(o)
    if name == "error vsa length beyond body":  # the reply does not parse: not even a trustworthy reject
        assert (o.result, o.error_kind) == ("error", "malformed") and o.diagnosis[0]["code"] == "malformed_reply"
        return
    assert (o.result, o.error_kind) == ("reject", None), o.to_json()
    assert o.diagnosis[0]["code"] == "access_reject"
    if name in ("error invalid utf-8", "error huge message"):  # still readable: E= is there
        assert o.eap_detail is not None and o.eap_detail.startswith("MS-CHAP-Error E=691")
    else:
        assert o.eap_detail == "MS-CHAP-Error present but unreadable", o.to_json()
        assert any("MS-CHAP-Error" in w for w in o.warnings)


def test_honest_relay_is_clean(hostile: Callable[..., HostileServer], probe_run: Any, robust: Any,
                               emulator_thread: Any) -> None:
    """The rewrite machinery itself changes nothing when it keeps the attribute: accept, keys match."""
    server = hostile(rewrite(S, lambda value: [v(S, value)]), upstream=emulator_thread)
    o, _ = probe_run("mschapv2", server.address)
    robust("mschapv2", "honest relay", o)
    assert (o.result, o.error_kind, o.mppe) == ("accept", None, "match"), o.to_json()


# --------------------------------------------------------------------------- bare EAP-MSCHAPv2 (EAP type 26)


def rewrite_eap_mschapv2(opcode: int, new_body: Callable[[bytes], bytes]) -> Callable[[Ctx], Any]:
    """Forward; in an EAP-Request/MSCHAPv2 with ``opcode``, replace what follows the MS-CHAPv2 header."""

    def case(ctx: Ctx) -> Any:
        if ctx.reply is None:
            return None
        up = ctx.upstream_packet()
        eap = up.eap()
        if eap is None or len(eap) < 9 or eap[0] != 1 or eap[4] != 26 or eap[5] != opcode:
            return None  # not the message under test: pass it on as it is
        body = new_body(eap[9:])
        ms_part = bytes([opcode, eap[6]]) + (4 + len(body)).to_bytes(2, "big") + body
        new_eap = bytes([1, eap[1]]) + (5 + len(ms_part)).to_bytes(2, "big") + bytes([26]) + ms_part
        attrs = [a for a in up.attributes if a[0] not in (pk.EAP_MESSAGE, pk.MESSAGE_AUTHENTICATOR)]
        return [Send(ctx.resign([*pk.eap_message_attrs(new_eap), *attrs]))]

    return case


EAP_SUCCESS_CASES: dict[str, Callable[[bytes], bytes]] = {
    "eap success wrong S=": lambda body: b"S=" + b"0" * 40,
    "eap success truncated": lambda body: body[:12],
    "eap success not hex": lambda body: b"S=" + b"Q" * 40,
    "eap success junk after": lambda body: body + b" X=1",
    "eap success empty": lambda body: b"",
    "eap success binary": lambda body: bytes(range(256))[:180],
}
EAP_FAILURE_CASES: dict[str, Callable[[bytes], bytes]] = {
    "eap failure no E": lambda body: b"R=0 V=3",
    "eap failure E not a number": lambda body: b"E=x R=0 V=3",
    "eap failure short C": lambda body: b"E=691 R=1 C=00 V=3",
    "eap failure binary": lambda body: bytes(range(1, 120)),
    "eap failure empty": lambda body: b"",
}


@pytest.mark.parametrize("name", list(EAP_SUCCESS_CASES))
def test_bare_eap_mschapv2_bad_success_request_is_classified(hostile: Callable[..., HostileServer], probe_run: Any,
                                                             robust: Any, emulator_thread: Any, name: str) -> None:
    server = hostile(rewrite_eap_mschapv2(3, EAP_SUCCESS_CASES[name]), upstream=emulator_thread)
    o, _ = probe_run("eap-mschapv2", server.address)
    robust("eap-mschapv2", name, o)
    assert_bounded(o)
    assert (o.result, o.error_kind) == ("error", "mschapv2"), o.to_json()
    assert o.error_state is not None and o.error_state.startswith("eap-mschapv2/")
    if name == "eap success wrong S=":
        assert o.diagnosis[0]["code"] == "mschapv2_server_proof_failed"
    assert DEFAULT_PASSWORD not in o.to_json()


@pytest.mark.parametrize("name", list(EAP_FAILURE_CASES))
def test_bare_eap_mschapv2_bad_failure_request_is_classified(hostile: Callable[..., HostileServer], probe_run: Any,
                                                             robust: Any, emulator_thread: Any, name: str) -> None:
    server = hostile(rewrite_eap_mschapv2(4, EAP_FAILURE_CASES[name]), upstream=emulator_thread)
    o, _ = probe_run("eap-mschapv2", server.address, password="wrong-password", expect="reject")
    robust("eap-mschapv2", name, o)
    assert_bounded(o)
    assert (o.result, o.error_kind) == ("error", "mschapv2"), o.to_json()
    assert o.error_detail is not None and o.error_detail.startswith("malformed MS-CHAPv2 request")
