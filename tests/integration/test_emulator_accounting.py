"""The emulator's accounting port (probe/emulator/accounting.py) and broken accounting / Status-Server answers.

Real sockets on 127.0.0.1: the probe's accounting and Status-Server checks against the emulator's
listener (NPS's order of checks: client, Request Authenticator, duplicates), and against a rogue
server that answers with the wrong code or signature (a classification, never a traceback).
"""

from __future__ import annotations

import asyncio
import socket

from probe.drivers.aio import authenticate
from probe.drivers.blocking import authenticate_blocking
from probe.emulator.accounting import AccountingListener
from probe.emulator.config import DEFAULT_SECRET, default_config
from probe.model import ProbeConfig, RadsecOptions, Secret
from probe.outcome import Outcome
from probe.radius import packet as pk
from tests.helpers import FAST, rogue, run

SECRET = DEFAULT_SECRET.encode()


def acct(address: tuple[str, int], secret: bytes = SECRET, **kw: object) -> ProbeConfig:
    return ProbeConfig(address=address, secret=Secret(secret), method="accounting", identity="alice",
                       policy=FAST, **kw)  # type: ignore[arg-type]


def test_records_each_acknowledged_accounting_request() -> None:
    async def go() -> tuple[Outcome, AccountingListener]:
        listener = AccountingListener(default_config())
        await listener.start("127.0.0.1", 0)
        try:
            return await authenticate(acct(listener.address)), listener
        finally:
            listener.stop()
    o, listener = run(go())
    assert o.result == "accept" and o.expectation_met
    session = o.accounting["session_id"] if o.accounting else None
    assert [(r.status, r.session_id, r.user) for r in listener.records] == [
        ("Start", session, "alice"), ("Interim-Update", session, "alice"), ("Stop", session, "alice")]


def test_a_retransmission_is_answered_again_and_recorded_once() -> None:
    async def go() -> tuple[list[bytes], AccountingListener]:
        listener = AccountingListener(default_config())
        await listener.start("127.0.0.1", 0)
        request = pk.build_request(3, bytes(16), [(40, (1).to_bytes(4, "big")), (44, b"s-9")], SECRET,
                                   code=pk.ACCOUNTING_REQUEST)
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.connect(listener.address)
            answers = []
            for _ in range(2):
                sock.send(request.raw)
                answers.append(await asyncio.wait_for(loop.sock_recv(sock, 4096), 5))
        listener.stop()
        for answer in answers:
            assert pk.verify_reply(answer, request, SECRET).code == pk.ACCOUNTING_RESPONSE
        return answers, listener
    answers, listener = run(go())
    assert answers[0] == answers[1] and len(listener.records) == 1


def test_not_a_client_and_missing_attributes_are_dropped() -> None:
    async def go() -> tuple[Outcome, Outcome, AccountingListener]:
        config = default_config()
        config.clients = []  # nobody is a RADIUS client
        stranger = AccountingListener(config)
        await stranger.start("127.0.0.1", 0)
        listener = AccountingListener(default_config())
        await listener.start("127.0.0.1", 0)
        try:
            dropped = await authenticate(acct(stranger.address))
            bare = await authenticate(acct(listener.address, extra_attrs=[("Acct-Status-Type", "Start"),
                                                                          ("Acct-Session-Id", "x")]))
            # RFC 2866: no Acct-Status-Type / Acct-Session-Id -> dropped (NPS cannot record it)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(pk.build_request(1, bytes(16), [(pk.USER_NAME, b"x")], SECRET,
                                             code=pk.ACCOUNTING_REQUEST).raw, listener.address)
                for _ in range(50):
                    if listener.events:
                        break
                    await asyncio.sleep(0.02)
            assert [e for e, _ in listener.events] == [4407] and len(listener.records) == 1
            return dropped, bare, stranger
        finally:
            stranger.stop()
            listener.stop()
    dropped, bare, stranger = run(go())
    assert dropped.result == "discard" and [e for e, _ in stranger.events] == [13, 13]
    assert dropped.diagnosis[0]["code"] == "accounting_unanswered"
    assert bare.result == "accept" and bare.round_trips == 1


def test_wrong_answers_are_classified() -> None:
    async def against(respond: object, cfg_for: object) -> Outcome:
        async with rogue(respond) as address:  # type: ignore[arg-type]
            return await authenticate(cfg_for(address))  # type: ignore[operator]

    def status(address: tuple[str, int]) -> ProbeConfig:
        return ProbeConfig(address=address, secret=Secret(SECRET), method="status-server", identity="", policy=FAST)

    cases = [
        (lambda r: pk.build_reply(pk.ACCESS_ACCEPT, r, [], SECRET), acct, "malformed"),  # not an accounting answer
        (lambda r: pk.build_reply(pk.ACCOUNTING_RESPONSE, r, [], b"other"), acct, "bad_authenticator"),
        (lambda r: pk.build_reply(pk.ACCESS_CHALLENGE, r, [], SECRET), status, "malformed"),
        (lambda r: pk.build_reply(pk.ACCESS_ACCEPT, r, [], b"other"), status, "bad_authenticator"),
    ]
    for respond, cfg_for, kind in cases:
        o = run(against(respond, cfg_for))
        assert (o.result, o.error_kind) == ("error", kind), o.to_json()


def test_blocking_driver_runs_status_and_refuses_radsec() -> None:
    # the blocking driver (the Locust user's) runs the same Status-Server conversation: the emulator stays silent
    from probe.emulator.server import NpsEmulator
    from tests.helpers import emulator

    async def with_emulator() -> tuple[str, int]:
        async with emulator() as em:
            address = em.address
            o = await asyncio.to_thread(authenticate_blocking, ProbeConfig(
                address=address, secret=Secret(SECRET), method="status-server", identity="", policy=FAST))
            assert o.result == "discard" and o.diagnosis[0]["code"] == "status_server_unanswered"
            assert isinstance(em, NpsEmulator) and [e.event_id for e in em.events] == [4406, 4406]
            return address
    address = run(with_emulator())
    cfg = ProbeConfig(address=address, secret=Secret(SECRET), method="status-server", identity="", policy=FAST,
                      radsec=RadsecOptions(insecure=True))
    try:
        authenticate_blocking(cfg)
    except ValueError as exc:
        assert "UDP only" in str(exc)
    else:
        raise AssertionError("the blocking driver must refuse RadSec")
