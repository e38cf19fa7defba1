"""The emulator plants the causes `radius-probe diagnose` names, with NPS's events and reason codes.

Each test drives the real emulator over loopback with the real probe (or, where the probe cannot send
the request, a hand-built one) and reads the emulator's NPS-style events.  probe/emulator/config.py
documents each planted cause with its real-world counterpart.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest

from probe.drivers.aio import authenticate
from probe.emulator.config import EmulatorConfigError, default_config, load_config
from probe.emulator.nps_rules import DISCARD_CLASS, reason_class
from probe.emulator.server import NpsEmulator
from probe.radius import packet as pk
from probe.radius.transport import RadiusClient
from tests.helpers import FAST, emulator, pap, run


class SlowTypist(NpsEmulator):
    """The emulator on an accelerated clock: ``typing_s`` pass between each Access-Challenge and the answer."""

    def __init__(self, *args: Any, typing_s: float, **kw: Any) -> None:
        self.now = 1000.0
        self.typing_s = typing_s
        super().__init__(*args, clock=lambda: self.now, **kw)

    def _send(self, ans: Any, code: int, attrs: list[pk.Attr]) -> None:
        super()._send(ans, code, attrs)
        if code == pk.ACCESS_CHALLENGE:
            self.now += self.typing_s


def otp_after(typing_s: float, **config: Any) -> tuple[Any, list[Any]]:
    cfg = default_config()
    for key, value in config.items():
        setattr(cfg, key, value)

    async def go() -> tuple[Any, list[Any]]:
        em = SlowTypist(cfg, typing_s=typing_s)
        await em.start("127.0.0.1", 0)
        try:
            return await authenticate(pap(em.address, "dave", otp="123456")), list(em.events)
        finally:
            await em.stop()

    return run(go())


def test_an_otp_answered_after_three_minutes_is_invalid_session() -> None:
    o, events = otp_after(181.0)  # the default lifetime, 180 s, on an accelerated clock
    assert (o.result, o.round_trips) == ("reject", 2)
    assert [(e.event_id, e.reason) for e in events] == [(6276, None), (6273, 21)]
    assert "InvalidSession" in events[-1].text and "181 s after the challenge" in events[-1].text


def test_an_otp_answered_inside_three_minutes_is_accepted() -> None:
    o, events = otp_after(170.0)  # past the limits' 120 s max_age: the State still lives (240 s)
    assert o.result == "accept" and [e.event_id for e in events] == [6276, 6272]


def test_otp_session_lifetime_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "em.yaml"
    path.write_text("otp_session_lifetime: 0\n")
    assert load_config(path).otp_session_lifetime_s == 0.0
    o, events = otp_after(0.0, otp_session_lifetime_s=0.0)  # 0: every answer is late
    assert o.result == "reject" and "InvalidSession" in events[-1].text
    path.write_text("otp_session_lifetime: -1\n")
    with pytest.raises(EmulatorConfigError, match="otp_session_lifetime: must be seconds from 0 to 3600, not -1"):
        load_config(path)


def test_a_request_without_user_name_is_request_format_error() -> None:
    cfg = default_config()

    async def go() -> tuple[Any, list[Any]]:
        async with emulator(cfg) as em:
            async with RadiusClient(em.address, cfg.secret) as client:
                def nameless(ident: int) -> pk.Packet:
                    auth = os.urandom(16)
                    return pk.build_request(ident, auth, [pk.password_attr(b"Passw0rd!", cfg.secret, auth)],
                                            cfg.secret)

                ex = await client.exchange(nameless, FAST)
            return ex, list(em.events)

    ex, events = run(go())
    assert ex.reply is None and ex.error_kind is None  # discarded: no reply at all
    assert [e.event_id for e in events if e.event_id != 4401] == [6274] and "REQUEST_FORMAT_ERROR" in events[0].text


def test_a_request_without_nas_ip_address_gets_mfa_and_event_4() -> None:
    """Over IPv6 the probe sends NAS-IPv6-Address: IP_WHITELIST (IPv4 NAS-IP-Address) cannot apply."""
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()
    except OSError:
        pytest.skip("no IPv6 here")
    cfg = default_config()
    cfg.ip_whitelist = ["127.0.0.1"]

    async def go() -> tuple[Any, list[Any], list[str], Any]:
        em = NpsEmulator(cfg)
        await em.start("::1", 0)
        try:
            v6 = await authenticate(pap(em.address, "carol"))
            events, pushed = list(em.events), list(em.mfa_started)
        finally:
            await em.stop()
        async with emulator(cfg) as em4:  # the same user with NAS-IP-Address 127.0.0.1: whitelisted
            v4 = await authenticate(pap(em4.address, "carol"))
        return v6, events, pushed, v4

    v6, events, pushed, v4 = run(go())
    assert [(e.event_id, e.user) for e in events if e.event_id != 4401] == [(4, "carol"), (6274, "carol")]
    assert "IP_WHITE_LIST_WARNING" in events[0].text
    assert v6.result == "discard"  # MFA ran: carol's extension error (ESTS) drops it
    assert v4.result == "accept"


@pytest.mark.parametrize(("user", "require_user_match", "result", "text"), [
    ("erin", True, "reject", "REQUIRE_USER_MATCH true"),
    ("erin", False, "accept", "REQUIRE_USER_MATCH false"),
    ("tenant", True, "reject", "AccessDenied: Caller tenant doesn't have access permissions"),
])
def test_extension_rejects_are_reason_21(user: str, require_user_match: bool, result: str, text: str) -> None:
    from probe.emulator.config import EmulatedUser

    cfg = default_config()
    cfg.require_user_match = require_user_match
    cfg.users["tenant"] = EmulatedUser("tenant", mfa="foreign_tenant")

    async def go() -> tuple[Any, list[Any], list[str]]:
        async with emulator(cfg) as em:
            return await authenticate(pap(em.address, user)), list(em.events), list(em.mfa_started)

    o, events, pushed = run(go())
    assert o.result == result and text in events[-1].text
    assert (events[-1].event_id, events[-1].reason) == ((6273, 21) if result == "reject" else (6272, None))
    assert pushed == []  # no push is sent for a user who cannot do MFA


def test_every_event_reason_has_its_class() -> None:
    """6274 carries only discard-class reasons (or none), 6273 only reject-class ones, over the PAP causes."""
    cfg = default_config()

    async def go() -> list[Any]:
        async with emulator(cfg) as em:
            for user in ("alice", "bob", "carol", "erin", "frank"):
                await authenticate(pap(em.address, user))
            await authenticate(pap(em.address, "alice", password="wrong"))
            return list(em.events)

    events = run(go())
    assert {e.event_id for e in events} >= {6272, 6273, 6274}
    for e in events:
        if e.event_id == 6274 and e.reason is not None:
            assert e.reason in DISCARD_CLASS
        if e.event_id == 6273:
            assert reason_class(e.reason) == "reject"
    assert [(e.event_id, e.reason) for e in events if e.user == "carol"] == [(6274, 9)]


@pytest.mark.parametrize(("tamper", "reason"), [(True, 301), (False, None)])
def test_a_cryptobinding_nps_cannot_verify_is_reason_301(lab_emulator: Any, lab_pki: Any,
                                                         monkeypatch: pytest.MonkeyPatch, tamper: bool,
                                                         reason: int | None) -> None:
    """The probe's Cryptobinding response with a broken compound MAC (as a TLS-terminating middlebox would send):
    NPS rejects with reason 301, and the judge's first entry names 301 among its causes."""
    from probe.eap import peap as peer_peap
    from probe.model import ProbeConfig, Secret, TlsOptions
    from probe.emulator.config import DEFAULT_PASSWORD, DEFAULT_SECRET

    real = peer_peap.build_cryptobinding_response
    if tamper:
        monkeypatch.setattr(peer_peap, "build_cryptobinding_response",
                            lambda *a, **k: (lambda t: t[:-1] + bytes([t[-1] ^ 1]))(real(*a, **k)))

    async def go() -> tuple[Any, list[Any]]:
        async with lab_emulator(cryptobinding="required") as em:
            cfg = ProbeConfig(address=em.address, secret=Secret(DEFAULT_SECRET.encode()), method="peap-mschapv2",
                              identity="alice", password=Secret(DEFAULT_PASSWORD.encode()), policy=FAST,
                              tls=TlsOptions(ca=str(lab_pki.directory / "ca.pem"), server_name="nps.lab.test"))
            return await authenticate(cfg), list(em.events)

    o, events = run(go())
    if reason is None:
        assert o.result == "accept" and o.cryptobinding == "valid"
        return
    assert o.result == "reject" and o.primary_auth_done
    assert [(e.event_id, e.reason) for e in events][-1] == (6273, reason)
    assert o.diagnosis[0]["code"] == "nps_reject_after_primary_auth" and "reason 301" in o.diagnosis[0]["text"]
