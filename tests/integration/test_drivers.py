"""The same sans-IO conversation under both drivers, over real UDP on 127.0.0.1.

``probe.drivers.aio.authenticate`` (the asyncio socket pool) and
``probe.drivers.blocking.authenticate_blocking`` (one plain socket, no event
loop) must reach identical Outcomes against the built-in emulator and against
FreeRADIUS, for PAP (accept, reject, OTP, silence) and for EAP methods.  No
assertion on elapsed time: only on what was said on the wire.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any, Iterator

import pytest

from probe.model import ProbeConfig, Secret, TlsOptions
from probe.drivers.aio import authenticate
from probe.drivers.blocking import authenticate_blocking
from probe.emulator.config import DEFAULT_PASSWORD, DEFAULT_SECRET, EapSettings, default_config
from probe.outcome import Outcome
from probe.pki import Pki, init_pki
from probe.radius import packet as pk
from probe.radius.transport import RetryPolicy
from tests.helpers import FAST, emulator, free_udp_port, pap, run
from tests.servers.freeradius import Behaviour, EapConfig, FreeRadiusServer, User, freeradius_available

PAP_USERS = ["alice", "bob", "carol", "dave"]
EAP_METHODS = ["eap-tls", "peap-mschapv2"]
EAP_POLICY = RetryPolicy(timeout_s=3.0, retries=1, listen_s=4.0)


def essence(o: Outcome) -> dict[str, Any]:
    """Everything about an Outcome that does not depend on timing or on random bytes."""
    d = o.to_dict()
    for key in ("duration_s", "final_response_s"):
        d.pop(key)
    d["attempts"] = [(a["round"], a["retransmission"], a["code"], a["late"], len(a["ignored"])) for a in d["attempts"]]
    d["reply_attributes"].pop("State", None)  # the server's random State for this conversation
    d["degraded"] = [text.split(":")[0] for text in d["degraded"]]  # "slow answer: 0.1 s is over ..." names a time
    return d


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki"))


def eap_cfg(lab: Pki, address: tuple[str, int], method: str, secret: str, *, user: str = "alice",
            password: str = DEFAULT_PASSWORD) -> ProbeConfig:
    tls = TlsOptions(ca=str(lab.ca), server_name="nps.lab.test")
    if method != "peap-mschapv2":
        tls.cert, tls.key = str(lab.users[user].cert), str(lab.users[user].key)
    return ProbeConfig(address=address, secret=Secret(secret.encode()), method=method, identity=user,
                       password=Secret(password.encode()), tls=tls, policy=EAP_POLICY)


def both_against_emulator(cfgs: list[ProbeConfig], config: Any = None) -> list[tuple[Outcome, Outcome]]:
    """Each config under the aio driver, then under the blocking driver (in a worker thread)."""

    async def go() -> list[tuple[Outcome, Outcome]]:
        async with emulator(config) as em:
            out = []
            for cfg in cfgs:
                cfg.address = em.address
                aio = await authenticate(cfg)
                blocking = await asyncio.to_thread(authenticate_blocking, cfg)
                out.append((aio, blocking))
            return out

    return run(go())


# -- against the emulator ----------------------------------------------------


def test_pap_under_both_drivers_against_the_emulator() -> None:
    cfgs = [pap(("127.0.0.1", 0), user) for user in PAP_USERS] + [pap(("127.0.0.1", 0), "dave", otp="123456")]
    pairs = both_against_emulator(cfgs)
    results = [(a.result, b.result) for a, b in pairs]
    assert results == [("accept", "accept"), ("reject", "reject"), ("discard", "discard"),
                       ("challenge", "challenge"), ("accept", "accept")]
    for aio, blocking in pairs:
        assert essence(aio) == essence(blocking)
    otp_aio, otp_blocking = pairs[-1]
    assert otp_blocking.round_trips == 2 and otp_blocking.primary_auth_done
    assert otp_blocking.reply_attributes == {"Class": [b"radius-probe-dave"]}
    discard = pairs[2][1]
    assert discard.retransmissions == FAST.retries and discard.final_response_s is None


@pytest.mark.parametrize("method", EAP_METHODS)
def test_eap_under_both_drivers_against_the_emulator(lab: Pki, method: str) -> None:
    config = default_config()
    config.eap = EapSettings.from_pki(lab.directory, tls_max_eap_tls="1.3")
    cfgs = [eap_cfg(lab, ("127.0.0.1", 0), method, DEFAULT_SECRET),
            eap_cfg(lab, ("127.0.0.1", 0), method, DEFAULT_SECRET, password="Wrong-Passw0rd")]
    (aio, blocking), (aio_bad, blocking_bad) = both_against_emulator(cfgs, config)
    assert (blocking.result, blocking.mppe, blocking.message_authenticator) == ("accept", "match", "valid")
    assert blocking.round_trips > 3 and blocking.error_kind is None
    assert essence(aio) == essence(blocking)
    assert essence(aio_bad) == essence(blocking_bad)
    if method == "peap-mschapv2":
        assert blocking.cryptobinding == "valid"
        assert blocking_bad.result == "reject"
    else:  # the password plays no part in EAP-TLS
        assert blocking_bad.result == "accept"


def test_icmp_unreachable_under_both_drivers() -> None:
    cfg = pap(("127.0.0.1", free_udp_port()), "alice", policy=RetryPolicy(timeout_s=2, retries=2, listen_s=6))
    blocking = authenticate_blocking(cfg)
    aio = run(authenticate(cfg))
    assert (blocking.result, blocking.error_kind) == ("error", "unreachable")
    assert [d["code"] for d in blocking.diagnosis] == ["port_unreachable"]
    assert essence(aio) == essence(blocking)


def test_blocking_retransmissions_are_byte_identical_from_one_port_and_tapped() -> None:
    seen: list[tuple[bytes, Any]] = []
    tapped: list[tuple[str, bytes]] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.settimeout(5)
        cfg = pap(silent.getsockname(), "alice", policy=RetryPolicy(timeout_s=0.2, retries=3, listen_s=1.0))
        o = authenticate_blocking(cfg, tap=lambda d, data, local, remote: tapped.append((d, data)))
        for _ in range(4):
            seen.append(silent.recvfrom(4096))
    assert o.result == "discard" and o.retransmissions == 3
    assert len({data for data, _ in seen}) == 1 and len({addr for _, addr in seen}) == 1
    assert [d for d, _ in tapped] == ["out"] * 4 and {data for _, data in tapped} == {seen[0][0]}
    assert pk.parse_packet(seen[0][0]).attributes[0][0] == pk.MESSAGE_AUTHENTICATOR
    assert [a.retransmission for a in o.attempts] == [0, 1, 2, 3]


def test_blocking_driver_ignores_a_spoof_and_counts_the_real_answer() -> None:
    """A forged reply first, the real one after: the blocking driver waits on, as the aio driver does."""
    made: list[socket.socket] = []

    def factory(family: int) -> socket.socket:
        made.append(socket.socket(family, socket.SOCK_DGRAM))
        return made[-1]

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)

        def answer() -> None:
            data, peer = server.recvfrom(4096)
            req = pk.parse_packet(data)
            server.sendto(pk.build_reply(pk.ACCESS_REJECT, req, [], b"spoofer"), peer)
            server.sendto(pk.build_reply(pk.ACCESS_ACCEPT, req, [], DEFAULT_SECRET.encode()), peer)

        t = threading.Thread(target=answer)  # the test's server runs in a thread; the driver has none
        t.start()
        o = authenticate_blocking(pap(server.getsockname(), "alice"), sock_factory=factory)
        t.join(10)
    assert (o.result, o.error_kind) == ("accept", None) and len(o.attempts[-1].ignored) == 1
    assert "bad_authenticator" in o.attempts[-1].ignored[0]
    assert len(made) == 1 and made[0].fileno() == -1  # the factory's socket was used, then closed


def test_blocking_driver_reads_the_injected_clock() -> None:
    """Every time in the Outcome comes from the clock it was given (here: one whole "second" per reading)."""
    readings: list[float] = []

    def clock() -> float:
        readings.append(5000.0 + len(readings))
        return readings[-1]

    async def go() -> Outcome:
        async with emulator() as em:
            cfg = pap(em.address, "alice", window_s=600, policy=RetryPolicy(timeout_s=1000, retries=0))
            return await asyncio.to_thread(authenticate_blocking, cfg, clock=clock)

    o = run(go())
    assert (o.result, o.retransmissions) == ("accept", 0)
    assert o.duration_s == readings[-1] - readings[0]
    assert o.final_response_s is not None and o.final_response_s == int(o.final_response_s) >= 1
    assert o.attempts[0].sent_s == int(o.attempts[0].sent_s) >= 1


# -- against FreeRADIUS --------------------------------------------------------

FR_SECRET = "fr-driver-secret"
FR_PASSWORD = "Corr3ct-Horse"

freeradius = pytest.mark.skipif(not freeradius_available(), reason="needs /usr/sbin/freeradius")


@pytest.fixture(scope="module")
def fr(tmp_path_factory: pytest.TempPathFactory, lab: Pki) -> Iterator[FreeRadiusServer]:
    if not freeradius_available():
        pytest.skip("needs /usr/sbin/freeradius")
    users = [User("alice", FR_PASSWORD, reply_attributes=(("Filter-Id", "vpn"),)),
             User("bob", FR_PASSWORD, behaviour=Behaviour.REJECT),
             User("dave", FR_PASSWORD, behaviour=Behaviour.OTP, otp_code="123456")]
    eap = EapConfig(ca_file=lab.ca, server_cert=lab.server_chain, server_key=lab.server_key, tls_max_version="1.3")
    with FreeRadiusServer(tmp_path_factory.mktemp("fr-drivers"), FR_SECRET, users, eap=eap) as srv:
        yield srv


def fr_pap(port: int, user: str, **kw: Any) -> ProbeConfig:
    return pap(("127.0.0.1", port), user, password=FR_PASSWORD, secret=FR_SECRET, **kw)


@freeradius
@pytest.mark.freeradius
def test_pap_under_both_drivers_against_freeradius(fr: FreeRadiusServer) -> None:
    cfgs = [fr_pap(fr.port, "alice"), fr_pap(fr.port, "bob"), fr_pap(fr.port, "dave", otp="123456")]
    for cfg, want in zip(cfgs, ["accept", "reject", "accept"]):
        blocking = authenticate_blocking(cfg)
        aio = run(authenticate(cfg))
        assert blocking.result == want, blocking.to_dict()
        assert essence(aio) == essence(blocking)
    assert blocking.round_trips == 2 and blocking.primary_auth_done


@freeradius
@pytest.mark.freeradius
@pytest.mark.parametrize("method", EAP_METHODS)
def test_eap_under_both_drivers_against_freeradius(fr: FreeRadiusServer, lab: Pki, method: str) -> None:
    cfg = eap_cfg(lab, ("127.0.0.1", fr.port), method, FR_SECRET, password=FR_PASSWORD)
    blocking = authenticate_blocking(cfg)
    aio = run(authenticate(cfg))
    assert (blocking.result, blocking.mppe, blocking.message_authenticator) == ("accept", "match", "valid"), \
        blocking.to_dict()
    assert essence(aio) == essence(blocking)

