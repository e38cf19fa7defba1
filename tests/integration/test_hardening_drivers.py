"""Probe-side bounds over real UDP on 127.0.0.1 (issue 11: findings 1, 3, 8, 10), through both drivers.

Real peers: the NPS emulator, and small servers written here for what no sane
server does (a spoofer flooding bad replies, a challenger that never ends).  ICMP
errors are crafted with a raw socket (the tests run as root) and sent on loopback
only, quoting the probe's own datagram, so the kernel delivers them to the probe's
socket exactly as a router's or a host's would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from probe.drivers.aio import authenticate
from probe.drivers.blocking import authenticate_blocking
from probe.emulator.config import DEFAULT_PASSWORD, DEFAULT_SECRET, EmulatedUser, EmulatorConfig, default_config
from probe.emulator.server import NpsEmulator
from probe.model import ProbeConfig, Secret, TlsOptions
from probe.outcome import Outcome
from probe.pki import Pki
from probe.radius import packet as pk
from probe.radius.transport import MAX_IGNORED_KEPT, RetryPolicy
from tests.helpers import Endless, cli, emulator, pap, run

SECRET = DEFAULT_SECRET.encode()
DRIVERS = ("aio", "blocking")
HELD_S = 1.0  # the emulator holds "held" this long: the window in which the tests inject ICMP errors


def drive(cfg: ProbeConfig, driver: str, **kw: Any) -> Outcome:
    """One authentication through the named driver (the blocking one in a worker thread)."""
    if driver == "aio":
        return run(authenticate(cfg, **kw))
    return authenticate_blocking(cfg, **kw)


def codes(o: Outcome) -> list[str]:
    return [str(d["code"]) for d in o.diagnosis]


@contextlib.contextmanager
def emulator_thread(config: EmulatorConfig) -> Iterator[int]:
    """The emulator on 127.0.0.1 in its own loop and thread (so either driver can run beside it)."""
    loop = asyncio.new_event_loop()
    em = NpsEmulator(config)
    started = threading.Event()
    box: dict[str, Any] = {}

    def serve() -> None:
        asyncio.set_event_loop(loop)
        box["address"] = loop.run_until_complete(em.start("127.0.0.1", 0))
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(30), "the emulator did not start"
    try:
        yield box["address"][1]
    finally:
        asyncio.run_coroutine_threadsafe(em.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


class UdpServer:
    """A RADIUS 'server' on 127.0.0.1 in a thread: ``respond(request, send)`` per request, bounded."""

    def __init__(self, respond: Callable[[pk.Packet, Callable[[bytes], None]], None], max_requests: int = 50,
                 lifetime_s: float = 60.0) -> None:
        self.respond = respond
        self.max_requests = max_requests
        self.lifetime_s = lifetime_s
        self.requests = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        end = time.monotonic() + self.lifetime_s
        while not self._stop.is_set() and time.monotonic() < end and self.requests < self.max_requests:
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            self.requests += 1
            self.respond(pk.parse_packet(data), lambda out, a=addr: self.sock.sendto(out, a))

    def __enter__(self) -> "UdpServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sock.close()




# -- finding 1: a spoofer's flood is counted, not kept ------------------------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_flood_of_spoofed_replies_is_bounded(driver: str) -> None:
    """Right Identifier, wrong authenticator, 2000 times; then the real answer: accept, 8 kept."""

    def respond(request: pk.Packet, send: Callable[[bytes], None]) -> None:
        for i in range(2000):
            send(pk.build_reply(pk.ACCESS_ACCEPT, request, [(pk.REPLY_MESSAGE, b"x%d" % i)], b"spoofer"))
        time.sleep(0.3)  # the probe drains its socket buffer: the real answer is not lost behind the flood
        send(pk.build_reply(pk.ACCESS_ACCEPT, request, [], SECRET))

    with UdpServer(respond, max_requests=3) as server:
        cfg = pap(("127.0.0.1", server.port), "alice", policy=RetryPolicy(timeout_s=5.0, retries=0))
        o = drive(cfg, driver)
    doc = json.loads(o.to_json())
    assert o.result == "accept" and o.error_kind is None, o.error_detail
    assert o.ignored_replies > MAX_IGNORED_KEPT  # many got through the socket buffer, every one counted
    assert len(o.attempts) == 1 and len(o.attempts[0].ignored) == MAX_IGNORED_KEPT
    assert doc["ignored_replies"] == o.ignored_replies == doc["attempts"][0]["ignored_total"]
    assert len(o.to_json()) < 5000


# -- finding 3: the overall deadline -------------------------------------------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_server_answering_every_round_late_meets_the_deadline(driver: str) -> None:
    """Each round answered after 0.9 s, --timeout 1: the 3 s deadline ends it (was 57.7 s)."""

    def respond(request: pk.Packet, send: Callable[[bytes], None]) -> None:
        time.sleep(0.9)
        send(pk.build_reply(pk.ACCESS_CHALLENGE, request, [(pk.EAP_MESSAGE, b"\x01\x01\x00\x05\x01")], SECRET))

    with UdpServer(respond, max_requests=12) as server:  # bounded: without a deadline it ends after 12 rounds
        cfg = pap(("127.0.0.1", server.port), "eve", policy=RetryPolicy(timeout_s=1.0, retries=2))
        started = time.monotonic()
        o = drive(cfg, driver, method=Endless())
        took = time.monotonic() - started
    assert (o.result, o.error_kind) == ("error", "deadline"), o.to_json()
    assert o.deadline_s == 3.0 and 2.9 <= o.duration_s <= 3.5 and took < 6.0
    assert 2 <= o.round_trips <= 4 and o.error_detail is not None and "3 s deadline" in o.error_detail
    assert codes(o) == ["authentication_deadline"]


def test_auth_deadline_flag_cuts_a_held_answer(tmp_path: Path) -> None:
    """``auth --deadline 1``: a 3 s hold with a 5 s timeout is cut at 1 s, a discard with the cut named."""
    config = default_config()
    config.users["held"] = EmulatedUser("held", DEFAULT_PASSWORD, "approve", 3.0)
    secret_file = tmp_path / "secret"
    secret_file.write_text(DEFAULT_SECRET + "\n")
    with emulator_thread(config) as port:
        done = cli("auth", f"127.0.0.1:{port}", "--secret-file", str(secret_file), "--identity", "held",
                   "--password", DEFAULT_PASSWORD, "--timeout", "5", "--retries", "0", "--late-wait", "5",
                   "--deadline", "1", "--json")
    doc = json.loads(done.stdout)
    assert done.returncode == 2 and doc["result"] == "discard" and doc["deadline_s"] == 1.0
    assert 0.9 <= doc["duration_s"] < 2.0
    assert any("cut after" in w and "1 s deadline" in w for w in doc["warnings"]), doc["warnings"]
    help_text = cli("auth", "--help").stdout + cli("run", "--help").stdout + cli("serve", "--help").stdout
    assert help_text.count("--deadline SECONDS") >= 6  # usage and option lines of the three commands


def test_probe_file_deadline_and_run_flag(tmp_path: Path) -> None:
    config = default_config()
    config.users["held"] = EmulatedUser("held", DEFAULT_PASSWORD, "approve", 3.0)
    secret_file = tmp_path / "secret"
    secret_file.write_text(DEFAULT_SECRET + "\n")
    with emulator_thread(config) as port:
        probe = tmp_path / "probe.yaml"
        probe.write_text(f"""modules:
  m: {{method: pap, identity: held, password_env: HA_PASSWORD, timeout: 5, retries: 0, late_wait: 5, deadline: 1.5}}
targets:
  lab: {{address: "127.0.0.1:{port}", secret_file: {secret_file}}}
checks:
  - {{name: held, target: lab, module: m, expect: {{result: accept}}}}
""")
        env = {"HA_PASSWORD": DEFAULT_PASSWORD}
        own = cli("run", str(probe), "--json", "-", "--no-progress", env=env)
        capped = cli("run", str(probe), "--json", "-", "--no-progress", "--deadline", "0.5", env=env)
        bad = tmp_path / "bad.yaml"
        bad.write_text(probe.read_text().replace("deadline: 1.5", "deadline: -1"))
        refused = cli("run", str(bad), "--no-progress", env=env)
    for done, deadline in ((own, 1.5), (capped, 0.5)):
        outcome = json.loads(done.stdout)["checks"][0]["outcome"]
        assert outcome["deadline_s"] == deadline and outcome["result"] == "discard", outcome
        assert deadline - 0.1 <= outcome["duration_s"] < deadline + 1.0
    assert refused.returncode == 3 and "deadline" in refused.stderr and "must be > 0" in refused.stderr


# -- finding 8: an ICMP error counts only when it is about the target ---------------------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def send_icmp_unreachable(*, offender: str, quoted_src: tuple[str, int], quoted_dst: tuple[str, int],
                          quoted: bytes, code: int = 3, to: str = "127.0.0.1") -> None:
    """An ICMP destination unreachable (type 3, ``code``) from ``offender`` to ``to``, on loopback only.

    It quotes an IPv4/UDP datagram ``quoted_src`` -> ``quoted_dst`` carrying ``quoted``.
    """
    for address in (offender, to, quoted_src[0], quoted_dst[0]):
        assert address.startswith("127."), "loopback only"
    udp = struct.pack("!HHHH", quoted_src[1], quoted_dst[1], 8 + len(quoted), 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + len(quoted), 0, 0, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton(quoted_src[0]), socket.inet_aton(quoted_dst[0]))
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    icmp = struct.pack("!BBHI", 3, code, 0, 0) + ip + udp + quoted
    icmp = icmp[:2] + struct.pack("!H", _checksum(icmp)) + icmp[4:]
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as raw:
        raw.bind((offender, 0))
        raw.sendto(icmp, (to, 0))


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="crafting ICMP needs a raw socket (root)")

# name -> (offender, quoted destination: "target" or an address, what the quote carries)
STRAYS = {
    "another destination": ("127.0.0.1", ("127.0.0.2", 9), "request"),
    "another offender": ("127.0.0.2", "target", "request"),
    "a datagram we never sent": ("127.0.0.1", "target", "forged"),
}


def _held_config() -> EmulatorConfig:
    config = default_config()
    config.sign_replies = "always"
    config.users["held"] = EmulatedUser("held", DEFAULT_PASSWORD, "approve", HELD_S)
    return config


def _injector(target: tuple[str, int], spec: tuple[str, Any, str]) -> Callable[..., None]:
    """A tap that answers the probe's first Access-Request with the stray ICMP error ``spec``."""
    offender, dst, carries = spec
    fired: list[bool] = []

    def tap(direction: str, data: bytes, local: tuple[str, int], remote: tuple[str, int]) -> None:
        if direction != "out" or fired:
            return
        fired.append(True)
        quoted = data if carries == "request" else bytes((1, data[1])) + os.urandom(18) + data[20:]
        send_icmp_unreachable(offender=offender, quoted_src=(local[0], local[1]),
                              quoted_dst=target if dst == "target" else dst, quoted=quoted)

    return tap


@needs_root
@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("stray", list(STRAYS))
def test_a_stray_icmp_error_does_not_touch_a_good_exchange(driver: str, stray: str) -> None:
    with emulator_thread(_held_config()) as port:
        target = ("127.0.0.1", port)
        cfg = pap(target, "held", policy=RetryPolicy(timeout_s=5.0, retries=0))
        o = drive(cfg, driver, tap=_injector(target, STRAYS[stray]))
    assert (o.result, o.error_kind) == ("accept", None), o.to_json()
    assert o.final_response_s is not None and o.final_response_s >= HELD_S * 0.9  # the ICMP came during the hold
    assert "unreachable" not in o.to_json() and codes(o) == []


@needs_root
@pytest.mark.parametrize("driver", DRIVERS)
def test_an_icmp_error_from_the_target_quoting_our_request_ends_the_wait(driver: str) -> None:
    """The control for the strays above: the same injection, about the target, is believed."""
    with emulator_thread(_held_config()) as port:
        target = ("127.0.0.1", port)
        cfg = pap(target, "held", policy=RetryPolicy(timeout_s=5.0, retries=0))
        o = drive(cfg, driver, tap=_injector(target, ("127.0.0.1", "target", "request")))
    assert (o.result, o.error_kind) == ("error", "unreachable") and o.duration_s < HELD_S * 0.9
    assert o.error_detail == "ICMP port unreachable: nothing listens there" and codes(o) == ["port_unreachable"]


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_nothing_listening_is_still_unreachable_at_once(driver: str, host: str) -> None:
    """The error queue of IPv4 (IP_RECVERR) and IPv6 (IPV6_RECVERR) sockets: the target's own ICMP counts."""
    if host == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6")
    cfg = pap((host, _free_port(host)), "alice", policy=RetryPolicy(timeout_s=5.0, retries=2))
    o = drive(cfg, driver)
    assert (o.result, o.error_kind) == ("error", "unreachable") and o.duration_s < 1.0
    assert codes(o) == ["port_unreachable"] and o.retransmissions == 0


# -- finding 10: an unsigned EAP reply; a discard after a long hold ------------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
def test_an_unsigned_eap_reply_from_a_real_server_is_ignored(lab_pki: Pki, driver: str) -> None:
    """The emulator with sign_replies: never answers EAP without Message-Authenticator (RFC 3579 3.2)."""
    config = default_config()
    config.sign_replies = "never"
    from probe.emulator.config import EapSettings

    config.eap = EapSettings.from_pki(lab_pki.directory)
    user = lab_pki.users["alice"]
    with emulator_thread(config) as port:
        cfg = ProbeConfig(address=("127.0.0.1", port), secret=Secret(SECRET), method="eap-tls", identity="alice",
                          tls=TlsOptions(cert=str(user.cert), key=str(user.key), ca=str(lab_pki.ca),
                                         server_name="nps.lab.test"),
                          policy=RetryPolicy(timeout_s=0.5, retries=1))
        o = drive(cfg, driver)
    assert (o.result, o.error_kind) == ("error", "bad_authenticator"), o.to_json()
    assert o.error_detail is not None and "Message-Authenticator missing" in o.error_detail
    # The emulator answers the first transmission (the retransmission is a duplicate it drops): ignored.
    assert o.round_trips == 1 and o.retransmissions == 1 and o.ignored_replies == 1
    assert codes(o) == ["bad_authenticator"]


@pytest.mark.slow
def test_a_discard_after_a_long_hold_is_classified_after_the_whole_wait() -> None:
    """The server holds the request and never answers; timeout 30, retries 1: a discard at 60 s."""
    config = default_config()
    config.users["held"] = EmulatedUser("held", DEFAULT_PASSWORD, "approve", 600.0)  # never within the test

    async def go() -> tuple[Outcome, list[Any]]:
        async with emulator(config) as em:
            o = await authenticate(pap(em.address, "held", policy=RetryPolicy(timeout_s=30.0, retries=1)))
            return o, list(em.events)

    o, events = run(go())
    assert (o.result, o.error_kind) == ("discard", None)
    assert 59.5 <= o.duration_s <= 62.0 and o.deadline_s == 60.0 and o.final_response_s is None
    assert o.retransmissions == 1 and [round(a.sent_s) for a in o.attempts] == [0, 30]
    assert all(a.answered_s is None for a in o.attempts) and o.warnings == []
    assert codes(o) == ["no_reply"] and not o.expectation_met and o.exit_code == 2
    assert "packet loss gives the same picture" in str(o.diagnosis[0]["text"])
    assert [e.event_id for e in events].count(4401) == 1  # the retransmission reached the server as a duplicate
