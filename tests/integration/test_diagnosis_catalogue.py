"""Every diagnosis catalogue entry, produced for real over 127.0.0.1 (issue 5, item 4).

One producer per code in ``probe.diagnosis.CATALOGUE``: it makes a server (the
NPS emulator, a subclass of it that misbehaves in one way, or a small rogue
server for replies no sane server sends) put the entry's wire signature on the
loopback, runs the probe against it and returns the Outcome. The test asserts
the code is in the Outcome's diagnosis with the result that goes with it, and
a guard fails as soon as the catalogue gains an entry nobody produces.

Server bugs are simulated by replacing ONE function in the emulator's own view
of a protocol module or rule (``peap_server.ms`` / ``peap_server.compound_keys``), so the probe's
peer keeps the real code and has to notice the server lie.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import textwrap
import types
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from probe.checks import BLAST_RADIUS, CheckResult, RunOptions, run_checks
from probe.config import load_probe_files
from probe.model import ProbeConfig, Secret, TlsOptions
from probe.methods import RoundPayload
from probe.drivers.aio import authenticate
from probe.diagnosis import CATALOGUE
from probe.drivers.aio import converse
from probe.eap import cryptobinding as cb
from probe.eap import mschapv2 as ms
from probe.eap import peap
from probe.eap.packet import EapPacket, EapType
from probe.eap import peap_common
from probe.emulator import eap_server, peap_server
from probe.emulator.config import (
    DEFAULT_PASSWORD,
    DEFAULT_SECRET,
    EapSettings,
    EmulatedUser,
    EmulatorConfig,
    default_config,
)
from probe.emulator.server import NpsEmulator, _Answer
from probe.outcome import Outcome
from probe.pki import (
    CLIENT_AUTH,
    SERVER_AUTH,
    Pki,
    init_pki,
    issue_certificate,
    save_private_key,
)
from probe.radius import packet as pk
from probe.radius.transport import RadiusClient, RetryPolicy
from tests.helpers import FAST, emulator, free_udp_port, pap, rogue, run

SECRET = DEFAULT_SECRET.encode()
SERVER_NAME = "nps.lab.test"
ONE_SHOT = RetryPolicy(timeout_s=3.0, retries=0, listen_s=0.0)
"""One transmission per round: every answer here is immediate on loopback, unless a test holds it."""

TLS_ALERT_HANDSHAKE_FAILURE = bytes((0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28))
"""A TLS record: fatal (2) handshake_failure (40) alert."""


@dataclass
class Lab:
    """What a producer may use: two lab PKIs, a scratch directory and pytest's monkeypatch."""

    pki: Pki
    short: Pki  # leaf certificates that expire in 10 days
    tmp: Path
    monkeypatch: pytest.MonkeyPatch


@pytest.fixture(scope="module")
def pki(lab_pki: Pki) -> Pki:
    return lab_pki  # the session's PKI (tests/conftest.py)


@pytest.fixture(scope="module")
def short_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki-short"), leaf_validity=timedelta(days=10))


@pytest.fixture
def lab(pki: Pki, short_pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lab:
    return Lab(pki, short_pki, tmp_path, monkeypatch)


# ---------------------------------------------------------------------------
# Building blocks


def eap_probe(p: Pki, address: tuple[str, int], method: str, user: str = "alice", *,
              cert_user: str | None = None, password: str = DEFAULT_PASSWORD, server_name: str = SERVER_NAME,
              **kw: Any) -> ProbeConfig:
    """An EAP ProbeConfig trusting the lab CA; certificate methods use ``cert_user``'s certificate."""
    tls = TlsOptions(ca=str(p.ca), server_name=server_name)
    if method != "peap-mschapv2":
        cert = p.users[cert_user or user]
        tls.cert, tls.key = str(cert.cert), str(cert.key)
    kw.setdefault("policy", ONE_SHOT)
    return ProbeConfig(address=address, secret=Secret(SECRET), method=method, identity=user,
                       password=Secret(password.encode()), tls=tls, **kw)


def eap_config(p: Pki, **settings: Any) -> EmulatorConfig:
    config = default_config()
    config.eap = EapSettings.from_pki(p.directory, **settings)
    return config


def against(em: NpsEmulator, make: Callable[[tuple[str, int]], ProbeConfig]) -> tuple[Outcome, NpsEmulator]:
    """Start ``em`` on a free loopback port, authenticate once with ``make(address)``, stop it."""
    async def go() -> Outcome:
        await em.start("127.0.0.1", 0)
        try:
            return await authenticate(make(em.address))
        finally:
            await em.stop()
    return run(go()), em


def pap_against(identity: str, config: EmulatorConfig | None = None, **kw: Any) -> tuple[Outcome, NpsEmulator]:
    return against(NpsEmulator(config or default_config()), lambda addr: pap(addr, identity, **kw))


def against_rogue(respond: Callable[[pk.Packet], bytes | None],
                  make: Callable[[tuple[str, int]], ProbeConfig]) -> Outcome:
    async def go() -> Outcome:
        async with rogue(respond) as addr:
            return await authenticate(make(addr))
    return run(go())


def event_ids(em: NpsEmulator) -> list[int]:
    return [e.event_id for e in em.events]


def server_view(module: types.ModuleType, **replaced: Any) -> types.SimpleNamespace:
    """The module as the emulator's EAP server sees it, with ``replaced`` functions: the peer keeps the real ones."""
    return types.SimpleNamespace(**{**vars(module), **replaced})


def lab_server_certificate(p: Pki, directory: Path, *, not_before: datetime, not_after: datetime,
                           ekus: tuple[x509.ObjectIdentifier, ...]) -> EapSettings:
    """EAP settings with a one-off server certificate for nps.lab.test, signed by the lab CA."""
    ca_cert = x509.load_pem_x509_certificate(p.ca.read_bytes())
    ca_key = serialization.load_pem_private_key(p.ca_key.read_bytes(), password=None)
    issued = issue_certificate(SERVER_NAME, issuer_cert=ca_cert, issuer_key=ca_key,  # type: ignore[arg-type]
                               not_before=not_before, not_after=not_after, ekus=ekus, dns_names=(SERVER_NAME,))
    chain, key = directory / "server-chain.pem", directory / "server.key"
    chain.write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM) + p.ca.read_bytes())
    save_private_key(key, issued.key)
    return EapSettings(server_cert=chain, server_key=key, ca_file=p.ca)


class KeyRewritingNps(NpsEmulator):
    """The emulator behind a proxy that rewrites the Access-Accept's attributes with ``rewrite``."""

    def __init__(self, config: EmulatorConfig, rewrite: Callable[[list[pk.Attr], pk.Packet], list[pk.Attr]]) -> None:
        super().__init__(config)
        self.rewrite = rewrite
        self.rewritten = 0

    def _accept(self, ans: _Answer, user: EmulatedUser, text: str) -> None:
        ans.accept_attrs = self.rewrite(list(ans.accept_attrs), ans.request)
        self.rewritten += 1
        super()._accept(ans, user, text)


def _is_mppe(attr: pk.Attr) -> bool:
    if attr[0] != pk.VENDOR_SPECIFIC:
        return False
    vendor, subs = pk.split_vsa(attr[1])
    return vendor == pk.VENDOR_MICROSOFT and any(t in (pk.MS_MPPE_SEND_KEY, pk.MS_MPPE_RECV_KEY) for t, _ in subs)


def strip_mppe(attrs: list[pk.Attr], request: pk.Packet) -> list[pk.Attr]:
    """A proxy that drops vendor attributes."""
    assert any(_is_mppe(a) for a in attrs), "the emulator sent no MS-MPPE keys"
    return [a for a in attrs if not _is_mppe(a)]


def swap_mppe(attrs: list[pk.Attr], request: pk.Packet) -> list[pk.Attr]:
    """A proxy that re-encrypts the keys hop by hop and mixes up Send and Recv (right bytes, wrong direction)."""
    keys = pk.mppe_keys(pk.Packet(pk.ACCESS_ACCEPT, 0, bytes(16), attrs), request.authenticator, SECRET)
    assert keys is not None, "the emulator sent no MS-MPPE keys"
    send, recv = keys

    def salted(key: bytes) -> bytes:
        return pk.salt_encrypt(key, SECRET, request.authenticator, bytes((0x80 | os.urandom(1)[0],)) + os.urandom(1))

    return [a for a in attrs if not _is_mppe(a)] + [pk.vsa(pk.VENDOR_MICROSOFT, pk.MS_MPPE_SEND_KEY, salted(recv)),
                                                   pk.vsa(pk.VENDOR_MICROSOFT, pk.MS_MPPE_RECV_KEY, salted(send))]


class BrokenPeapServer:
    """A rogue, correctly signed server: PEAP Start on the Identity, ACKs our fragments, then ``answer(identifier)``."""

    def __init__(self, answer: Callable[[int], bytes]) -> None:
        self.answer = answer
        self.seen = 0

    def __call__(self, request: pk.Packet) -> bytes:
        self.seen += 1
        eap = request.eap()
        assert eap is not None and len(eap) >= 5, "the probe sent an Access-Request without EAP-Response"
        ident = (eap[1] + 1) % 256
        if eap[4] == EapType.IDENTITY:
            reply = EapPacket.request(ident, EapType.PEAP, b"\x20")  # Start, PEAP version 0
        elif len(eap) > 5 and eap[5] & 0x40:
            reply = EapPacket.request(ident, EapType.PEAP, b"\x00")  # ACK: more fragments to come
        else:
            return self._challenge(request, self.answer(ident))
        return self._challenge(request, reply.to_bytes())

    @staticmethod
    def _challenge(request: pk.Packet, eap: bytes) -> bytes:
        attrs = pk.eap_message_attrs(eap) + [(pk.STATE, os.urandom(16))]
        return pk.build_reply(pk.ACCESS_CHALLENGE, request, attrs, SECRET, message_authenticator=True)


def run_probe_file(lab: Lab, config: EmulatorConfig, module: str, options: RunOptions) -> CheckResult:
    """`radius-probe run` in process: one check from a probe file in ``lab.tmp`` against the emulator."""
    secret = lab.tmp / "secret"
    secret.write_text(DEFAULT_SECRET + "\n")

    async def go() -> list[CheckResult]:
        async with emulator(config) as em:
            path = lab.tmp / "probe.yaml"
            path.write_text(textwrap.dedent("""\
                modules:
                  m:
                """) + textwrap.indent(textwrap.dedent(module), "    ") + textwrap.dedent(f"""\
                targets:
                  lab:
                    address: 127.0.0.1:{em.address[1]}
                    secret_file: {secret}
                checks:
                  - name: catalogue
                    target: lab
                    module: m
                """))
            return await run_checks(load_probe_files([str(path)]), options)

    (result,) = run(go())
    return result


def eap_tls_module(p: Pki) -> str:
    alice = p.users["alice"]
    return f"""\
        method: eap-tls
        identity: alice
        cert: {alice.cert}
        key: {alice.key}
        ca: {p.ca}
        server_name: {SERVER_NAME}
        timeout: 3
        retries: 0
        late_wait: 0
        """


# ---------------------------------------------------------------------------
# Producers: one per catalogue code


def nps_discard_after_primary_auth(lab: Lab) -> Outcome:
    """PEAP-MSCHAPv2 for carol: every EAP round answered, the final one dropped (ESTS_TOKEN_ERROR)."""
    o, em = against(NpsEmulator(eap_config(lab.pki)),
                    lambda addr: eap_probe(lab.pki, addr, "peap-mschapv2", "carol", policy=FAST))
    assert 6274 in event_ids(em) and o.round_trips > 3 and o.primary_auth_done
    return o


def no_reply(lab: Lab) -> Outcome:
    """A wrong shared secret: NPS drops every request silently (event 18)."""
    o, em = pap_against("alice", secret="not-the-lab-secret")
    assert set(event_ids(em)) == {18} and o.retransmissions == 1
    return o


def replies_match_no_request(lab: Lab) -> Outcome:
    """A server bug: the emulator decides as NPS does, but signs each reply for another Identifier (request's + 7)."""

    class WrongIdentifier(NpsEmulator):
        def _send(self, ans: _Answer, code: int, attrs: list[pk.Attr]) -> None:
            ans.request = dataclasses.replace(ans.request, identifier=(ans.request.identifier + 7) % 256)
            super()._send(ans, code, attrs)

    o, em = against(WrongIdentifier(default_config()), lambda addr: pap(addr, "alice"))
    assert 6272 in event_ids(em)  # the server granted access: its answers just never matched our request
    assert o.stray_replies >= 1 and o.attempts[-1].stray_unmatched == o.stray_replies  # (NPS drops duplicates)
    assert any(w.startswith("the server answered a request with another Identifier") for w in o.warnings)
    return o


def nps_reject_after_primary_auth(lab: Lab) -> Outcome:
    """PEAP-MSCHAPv2: the inner password passed (MS-CHAPv2 success), then the push was denied."""
    o, em = against(NpsEmulator(eap_config(lab.pki)), lambda addr: eap_probe(lab.pki, addr, "peap-mschapv2", "bob"))
    assert (em.events[-1].event_id, em.events[-1].reason) == (6273, 21) and o.primary_auth_done
    return o


def otp_rejected(lab: Lab) -> Outcome:
    """PAP with OTP: the password passed (Access-Challenge), the wrong code is rejected, and that is told
    apart from a denied push (both are a reject after the first factor)."""
    o, _ = pap_against("dave", otp="000000")
    assert [a.code for a in o.attempts] == ["Access-Challenge", "Access-Reject"]
    assert "nps_reject_after_primary_auth" not in [d["code"] for d in o.diagnosis]
    return o


def access_reject(lab: Lab) -> Outcome:
    o, em = pap_against("bob")
    assert (em.events[-1].event_id, em.events[-1].reason) == (6273, 21)
    return o


def otp_challenge(lab: Lab) -> Outcome:
    o, _ = pap_against("dave")
    assert o.reply_message == "Enter your Microsoft verification code"
    return o


def _patient(delay_s: float) -> EmulatorConfig:
    config = default_config()
    config.users["patient"].delay_s = delay_s
    return config


def late_answer_beyond_client_timeout(lab: Lab) -> Outcome:
    """A 1 s approval against a client that gives up after 2 x 0.3 s; we keep listening."""
    o, _ = pap_against("patient", _patient(1.0), window_s=10.0,
                       policy=RetryPolicy(timeout_s=0.3, retries=1, listen_s=4.0))
    assert o.late and o.client_timeout_s == pytest.approx(0.6) and o.within_window
    return o


def answer_outside_window(lab: Lab) -> Outcome:
    o, _ = pap_against("patient", _patient(1.0), window_s=0.5, policy=RetryPolicy(timeout_s=4.0, retries=0))
    assert not o.within_window and not o.late
    assert o.final_response_s is not None and o.final_response_s >= 1.0
    return o


def slow_answer(lab: Lab) -> Outcome:
    """A 2 s hold in a 2.5 s window: inside it, but past the default 75 %."""
    o, _ = pap_against("patient", _patient(2.0), window_s=2.5, policy=RetryPolicy(timeout_s=4.0, retries=0))
    assert o.within_window and o.final_response_s is not None and o.final_response_s >= 2.0
    assert o.degraded and o.exit_code == 1
    return o


def bad_authenticator(lab: Lab) -> Outcome:
    """Replies signed with another secret than ours."""
    o = against_rogue(lambda req: pk.build_reply(pk.ACCESS_ACCEPT, req, [], b"the-servers-secret"),
                      lambda addr: pap(addr, "alice"))
    assert o.attempts[-1].ignored
    return o


def port_unreachable(lab: Lab) -> Outcome:
    return run(authenticate(pap(("127.0.0.1", free_udp_port()), "alice",
                                policy=RetryPolicy(timeout_s=2.0, retries=1))))


class SlowChallenger(asyncio.DatagramProtocol):
    """Answers every request with an Access-Challenge (State), each 1.2 s late: a server slow on every round."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        reply = pk.build_reply(pk.ACCESS_CHALLENGE, pk.parse_packet(data), [(pk.STATE, b"round")], SECRET)
        assert self.transport is not None
        asyncio.get_running_loop().call_later(1.2, self.transport.sendto, reply, addr)


def authentication_deadline(lab: Lab) -> Outcome:
    """PAP + OTP against a server answering each round after 1.2 s: the 1.6 s deadline ends round 2."""
    async def go() -> Outcome:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(SlowChallenger, local_addr=("127.0.0.1", 0))
        try:
            addr = transport.get_extra_info("sockname")[:2]
            return await authenticate(pap(addr, "dave", otp="123456",
                                          policy=RetryPolicy(timeout_s=3.0, retries=0, deadline_s=1.6)))
        finally:
            transport.close()
    o = run(go())
    assert o.round_trips == 2 and o.deadline_s == 1.6
    return o


def client_certificate_rejected(lab: Lab) -> Outcome:
    """EAP-TLS with alice's expired certificate: NPS reason 268."""
    o, em = against(NpsEmulator(eap_config(lab.pki)),
                    lambda addr: eap_probe(lab.pki, addr, "eap-tls", cert_user="expired"))
    assert (em.events[-1].event_id, em.events[-1].reason) == (6273, 268)
    return o


def eap_credentials_rejected(lab: Lab) -> Outcome:
    o, em = against(NpsEmulator(eap_config(lab.pki)),
                    lambda addr: eap_probe(lab.pki, addr, "peap-mschapv2", password="wrong"))
    assert (em.events[-1].event_id, em.events[-1].reason) == (6273, 16) and "E=691" in (o.eap_detail or "")
    return o


def server_certificate_untrusted(lab: Lab) -> Outcome:
    """The emulator presents a certificate from the untrusted CA."""
    settings = EapSettings(server_cert=lab.pki.untrusted_server_cert, server_key=lab.pki.untrusted_server_key,
                           ca_file=lab.pki.ca)
    config = default_config()
    config.eap = settings
    o, _ = against(NpsEmulator(config), lambda addr: eap_probe(lab.pki, addr, "peap-mschapv2"))
    return o


def server_name_mismatch(lab: Lab) -> Outcome:
    o, _ = against(NpsEmulator(eap_config(lab.pki)),
                   lambda addr: eap_probe(lab.pki, addr, "peap-mschapv2", server_name="vpn-radius.example.com"))
    return o


def server_certificate_expired(lab: Lab) -> Outcome:
    now = datetime.now(UTC)
    config = default_config()
    config.eap = lab_server_certificate(lab.pki, lab.tmp, not_before=now - timedelta(days=30),
                                        not_after=now - timedelta(days=1), ekus=(SERVER_AUTH,))
    o, _ = against(NpsEmulator(config), lambda addr: eap_probe(lab.pki, addr, "peap-mschapv2"))
    return o


def server_certificate_wrong_purpose(lab: Lab) -> Outcome:
    """A server certificate issued from a client template: Client Authentication only."""
    now = datetime.now(UTC)
    config = default_config()
    config.eap = lab_server_certificate(lab.pki, lab.tmp, not_before=now - timedelta(hours=1),
                                        not_after=now + timedelta(days=365), ekus=(CLIENT_AUTH,))
    o, _ = against(NpsEmulator(config), lambda addr: eap_probe(lab.pki, addr, "peap-mschapv2"))
    return o


def tls_handshake_failed(lab: Lab) -> Outcome:
    """A server answers our ClientHello with a fatal handshake_failure alert, and again instead of failing.

    (A server that alerts and then sends EAP-Failure gives an Access-Reject, not this code.)
    """
    server = BrokenPeapServer(lambda ident: EapPacket.request(ident, EapType.PEAP,
                                                              b"\x00" + TLS_ALERT_HANDSHAKE_FAILURE).to_bytes())
    o = against_rogue(server, lambda addr: eap_probe(lab.pki, addr, "peap-mschapv2"))
    assert o.eap_detail == "TLS server sent alert: handshake failure"
    return o


def cryptobinding_invalid(lab: Lab) -> Outcome:
    """The server binds the inner method to other tunnel keys than the probe's (as a TLS-terminating middlebox)."""
    def other_tunnel(tunnel_key: bytes, inner_msk: bytes | None, *, inner_method_ran: bool) -> cb.CompoundKeys:
        return peap_common.compound_keys(bytes(b ^ 0xFF for b in tunnel_key), inner_msk,
                                         inner_method_ran=inner_method_ran)

    lab.monkeypatch.setattr(peap_server, "compound_keys", other_tunnel)  # the server's phase 2 (emulator)
    assert peap.compound_keys is peap_common.compound_keys  # the probe's peer is untouched
    o, _ = against(NpsEmulator(eap_config(lab.pki, cryptobinding="required")),
                   lambda addr: eap_probe(lab.pki, addr, "peap-mschapv2"))
    assert o.cryptobinding == "invalid"
    return o


def mppe_mismatch(lab: Lab) -> Outcome:
    em = KeyRewritingNps(eap_config(lab.pki), swap_mppe)
    o, _ = against(em, lambda addr: eap_probe(lab.pki, addr, "eap-tls"))
    assert em.rewritten == 1 and o.mppe == "mismatch"
    return o


def strip_eap_message(attrs: list[pk.Attr], request: pk.Packet) -> list[pk.Attr]:
    """A filter on the path that drops EAP-Message (the EAP-Success) from the Access-Accept."""
    assert any(a[0] == pk.EAP_MESSAGE for a in attrs), "the emulator sent no EAP-Success"
    return [a for a in attrs if a[0] != pk.EAP_MESSAGE]


def eap_success_missing(lab: Lab) -> Outcome:
    """The right keys, no EAP-Success: an eap error whose keys still match (no proxy blamed)."""
    em = KeyRewritingNps(eap_config(lab.pki), strip_eap_message)
    o, _ = against(em, lambda addr: eap_probe(lab.pki, addr, "peap-mschapv2"))
    assert em.rewritten == 1 and o.mppe == "match"
    return o


def mppe_unverified(lab: Lab) -> Outcome:
    """A correctly signed server that accepts the Identity with MS-MPPE keys: nothing to compare them with."""
    def respond(request: pk.Packet) -> bytes:
        keys = [pk.vsa(pk.VENDOR_MICROSOFT, t, pk.salt_encrypt(os.urandom(32), SECRET, request.authenticator,
                                                               b"\x80\x01")) for t in (pk.MS_MPPE_SEND_KEY, pk.MS_MPPE_RECV_KEY)]
        return pk.build_reply(pk.ACCESS_ACCEPT, request, keys, SECRET, message_authenticator=True)

    o = against_rogue(respond, lambda addr: eap_probe(lab.pki, addr, "eap-tls"))
    assert o.mppe == "unverified"
    return o


def mschapv2_server_proof_failed(lab: Lab) -> Outcome:
    """The server accepts the NT-Response but proves itself with another password (S= does not verify)."""
    def wrong_proof(password: str, *args: Any) -> bytes:
        return ms.generate_authenticator_response(password + "-not-it", *args)

    lab.monkeypatch.setattr(peap_server, "ms", server_view(ms, generate_authenticator_response=wrong_proof))
    assert peap.mschapv2 is ms  # the probe's peer is untouched
    o, _ = against(NpsEmulator(eap_config(lab.pki)), lambda addr: eap_probe(lab.pki, addr, "peap-mschapv2"))
    return o


def eap_protocol_error(lab: Lab) -> Outcome:
    """After PEAP started, the server switches to EAP-MD5 (a proxy or server bug)."""
    server = BrokenPeapServer(lambda ident: EapPacket.request(ident, EapType.MD5_CHALLENGE,
                                                              b"\x10" + bytes(16)).to_bytes())
    o = against_rogue(server, lambda addr: eap_probe(lab.pki, addr, "peap-mschapv2"))
    assert "unexpected EAP type" in (o.error_detail or "")
    return o


def mppe_absent(lab: Lab) -> Outcome:
    em = KeyRewritingNps(eap_config(lab.pki), strip_mppe)
    o, _ = against(em, lambda addr: eap_probe(lab.pki, addr, "peap-tls"))
    assert em.rewritten == 1 and o.mppe == "absent"
    return o


def message_authenticator_absent(lab: Lab) -> Outcome:
    """A probe file's PAP check against NPS as shipped: its PAP replies are unsigned."""
    password = lab.tmp / "password"
    password.write_text(DEFAULT_PASSWORD + "\n")
    result = run_probe_file(lab, default_config(), f"""\
        method: pap
        identity: alice
        password_file: {password}
        timeout: 2
        retries: 0
        late_wait: 0
        """, RunOptions())
    assert result.outcome.message_authenticator == "absent"
    assert (result.verdict, result.degraded) == ("DEGRADED", [BLAST_RADIUS])
    return result.outcome


def _expiring(lab: Lab, which: str) -> Outcome:
    """EAP-TLS from a probe file against a lab whose leaf certificates end in 10 days; warn at 30."""
    result = run_probe_file(lab, eap_config(lab.short), eap_tls_module(lab.short), RunOptions(cert_warn_days=30))
    assert result.verdict == "DEGRADED" and not result.failures
    assert any(d.startswith(f"{which} certificate ") and " expires in " in d for d in result.degraded), result.degraded
    return result.outcome


def server_certificate_expiring(lab: Lab) -> Outcome:
    return _expiring(lab, "server")


def client_certificate_expiring(lab: Lab) -> Outcome:
    return _expiring(lab, "client")


class CrashingMethod:
    """A method with a bug: it raises before anything is sent."""

    primary_auth_done = False
    user_name = "alice"

    def start(self) -> RoundPayload:
        raise RuntimeError("simulated bug in a method")

    def on_challenge(self, reply: pk.Packet) -> RoundPayload | None:
        raise AssertionError("never reached")

    def on_final(self, reply: pk.Packet, request: pk.Packet, outcome: Outcome) -> None:
        raise AssertionError("never reached")

    def report(self, outcome: Outcome) -> None:
        return None


def internal_error(lab: Lab) -> Outcome:
    async def go() -> tuple[Outcome, int]:
        async with emulator() as em:
            async with RadiusClient(em.address, SECRET) as client:
                o = await converse(pap(em.address, "alice"), client, CrashingMethod())
            await asyncio.sleep(0.05)
            return o, em.requests
    o, requests = run(go())
    assert requests == 0 and "simulated bug" in (o.error_detail or "")
    return o


def malformed_reply(lab: Lab) -> Outcome:
    """A reply whose only attribute claims 32 bytes and carries 7."""
    def respond(req: pk.Packet) -> bytes:
        body = b"\x12\x20short"
        return bytes((pk.ACCESS_ACCEPT, req.identifier)) + (20 + len(body)).to_bytes(2, "big") + bytes(16) + body
    return against_rogue(respond, lambda addr: pap(addr, "alice"))


def eap_stalled(lab: Lab) -> Outcome:
    """The server answers three EAP rounds, then nothing (fragments lost, or another NPS behind the VIP)."""

    class Stalling(NpsEmulator):
        def _handle_eap(self, ans: _Answer, eap: bytes) -> None:
            self.eap_rounds = getattr(self, "eap_rounds", 0) + 1
            if self.eap_rounds <= 3:
                super()._handle_eap(ans, eap)

    o, em = against(Stalling(eap_config(lab.pki)),
                    lambda addr: eap_probe(lab.pki, addr, "peap-mschapv2", policy=FAST))
    assert o.round_trips == 4 and not o.primary_auth_done
    assert not set(event_ids(em)) & {6272, 6273, 6274}  # NPS never decided: the conversation stalled
    return o


def server_refused_tls(lab: Lab) -> Outcome:
    """EAP-TLS against a policy that wants TLS 1.3 only, from a probe capped at TLS 1.2: a plain reject."""
    policy = eap_server.EapServerPolicy(server_cert=lab.pki.server_chain, server_key=lab.pki.server_key,
                                        ca_file=lab.pki.ca, methods=("eap-tls",), tls_min="1.3",
                                        tls_max_eap_tls="1.3")
    em = NpsEmulator(default_config(), eap_policy=policy)

    def make(addr: tuple[str, int]) -> ProbeConfig:
        cfg = eap_probe(lab.pki, addr, "eap-tls")
        cfg.tls.tls_max = "1.2"
        return cfg

    o, _ = against(em, make)
    assert o.tls is not None and o.tls["server_cert"] is None
    return o


def eap_method_not_offered(lab: Lab) -> Outcome:
    """EAP-TLS against a policy that offers PEAP only: the server proposes PEAP, our Nak asks for TLS, a reject."""
    policy = eap_server.EapServerPolicy(server_cert=lab.pki.server_chain, server_key=lab.pki.server_key,
                                        ca_file=lab.pki.ca, methods=("peap",))
    o, em = against(NpsEmulator(default_config(), eap_policy=policy), lambda addr: eap_probe(lab.pki, addr, "eap-tls"))
    assert o.eap_offered == ["PEAP"] and o.round_trips == 2
    assert "the server offered PEAP" in o.diagnosis[0]["text"]
    assert [(e.event_id, e.reason) for e in em.events] == [(6273, 22)]
    return o


def mfa_not_enforced(lab: Lab) -> Outcome:
    """The unenrolled canary: REQUIRE_USER_MATCH false lets erin in without MFA where a reject was expected."""
    config = default_config()
    config.require_user_match = False
    o, _ = pap_against("erin", config, expected="reject")
    assert not o.expectation_met
    return o


def expectation_unmet(lab: Lab) -> Outcome:
    """alice is accepted with Class radius-probe-alice; the check expects another Class (another policy matched)."""
    from probe.model import Expectation
    from probe.verdict import JudgeOptions, judge_outcome

    o, _ = pap_against("alice")
    judge_outcome(o, Expectation(result="accept", attributes={"Class": ["radius-probe-vpn"]},
                                 message_authenticator="required"), JudgeOptions(cert_warn_days=None))
    assert not o.expectation_met
    assert [d["code"] for d in o.diagnosis][:2] == ["expectation_unmet", "message_authenticator_absent"]
    return o


def account_restricted(lab: Lab) -> Outcome:
    """RADIUS MS-CHAPv2 refused with MS-CHAP-Error E=648 (password expired), as NPS answers an expired account."""
    from probe.radius import mschap

    def respond(req: pk.Packet) -> bytes:
        offer = mschap.find_offer(req)
        assert offer is not None
        error = mschap.error_attribute(offer.ident, 648, message="Password expired")
        return pk.build_reply(pk.ACCESS_REJECT, req, [error], DEFAULT_SECRET.encode(), message_authenticator=False)

    o = against_rogue(respond, lambda addr: ProbeConfig(address=addr, secret=Secret(DEFAULT_SECRET.encode()),
                                                        method="mschapv2", identity="alice",
                                                        password=Secret(DEFAULT_PASSWORD.encode()), policy=FAST))
    assert o.eap_detail == "MS-CHAP-Error E=648 (password expired), no retry: Password expired"
    return o


# code -> (producer, result, error_kind)
def status_server_unanswered(lab: Lab) -> Outcome:
    """NPS (the emulator) drops Status-Server whatever the secret: RFC 5997 is not implemented."""
    o, em = against(NpsEmulator(default_config()), lambda addr: ProbeConfig(
        address=addr, secret=Secret(SECRET), method="status-server", identity="", policy=FAST))
    assert event_ids(em) == [4406, 4406]  # the request and its retransmission
    return o


def accounting_unanswered(lab: Lab) -> Outcome:
    """The emulator's accounting port drops an Accounting-Request whose authenticator uses another secret."""
    from probe.emulator.accounting import AccountingListener

    listener = AccountingListener(default_config())

    async def go() -> Outcome:
        await listener.start("127.0.0.1", 0)
        try:
            return await authenticate(ProbeConfig(address=listener.address, secret=Secret(b"not-the-lab-secret"),
                                                  method="accounting", identity="alice", policy=FAST))
        finally:
            listener.stop()
    o = run(go())
    assert [e for e, _ in listener.events] == [18, 18] and not listener.records
    return o


def radsec_against(lab: Lab, case: Any, *, ca: Path | None = None) -> Outcome:
    """PAP over RadSec to the scripted TLS peer (tests/servers/radsec_peer.py) with the lab PKI."""
    from probe.model import RadsecOptions
    from tests.servers.radsec_peer import radsec_peer

    async def go() -> Outcome:
        async with radsec_peer(lab.pki, case) as addr:
            user = lab.pki.users["alice"]
            cfg = ProbeConfig(address=addr, secret=Secret(b"radsec"), method="pap", identity="alice",
                              password=Secret(DEFAULT_PASSWORD.encode()), policy=FAST,
                              radsec=RadsecOptions(cert=str(user.cert), key=str(user.key), ca=str(ca or lab.pki.ca),
                                                   server_name=SERVER_NAME))
            from probe.drivers.radsec import authenticate_radsec

            return await authenticate_radsec(cfg)
    return run(go())


def _radsec_expiring(lab: Lab, which: str) -> Outcome:
    """PAP over RadSec with the short-lived PKI: both the server's and this probe's certificates end in 10 days."""
    from probe.model import Expectation, RadsecOptions
    from probe.verdict import JudgeOptions, judge_outcome
    from tests.servers.radsec_peer import radsec_peer

    async def go() -> Outcome:
        async with radsec_peer(lab.short, lambda r, s: [pk.build_reply(pk.ACCESS_ACCEPT, r, [], s)]) as addr:
            user = lab.short.users["alice"]
            cfg = ProbeConfig(address=addr, secret=Secret(b"radsec"), method="pap", identity="alice",
                              password=Secret(DEFAULT_PASSWORD.encode()), policy=FAST,
                              radsec=RadsecOptions(cert=str(user.cert), key=str(user.key), ca=str(lab.short.ca),
                                                   server_name=SERVER_NAME))
            from probe.drivers.radsec import authenticate_radsec

            return await authenticate_radsec(cfg)
    o = run(go())
    judged = judge_outcome(o, Expectation(), JudgeOptions(cert_warn_days=30))
    assert judged.exit_code == 1 and not judged.failures
    assert any(d.startswith(f"RadSec {which} certificate ") and " expires in " in d for d in o.degraded), o.degraded
    return o


def radsec_server_certificate_expiring(lab: Lab) -> Outcome:
    return _radsec_expiring(lab, "server")


def radsec_client_certificate_expiring(lab: Lab) -> Outcome:
    return _radsec_expiring(lab, "client")


def radsec_tls_failed(lab: Lab) -> Outcome:
    """The RadSec server's certificate is from a CA this probe does not trust."""
    o = radsec_against(lab, lambda r, s: [], ca=lab.pki.untrusted_ca)
    assert o.attempts == [] and "does not verify" in (o.error_detail or "")
    return o


def radsec_connection_closed(lab: Lab) -> Outcome:
    """The RadSec server reads the request and closes the connection."""
    from tests.servers.radsec_peer import CLOSE

    o = radsec_against(lab, lambda r, s: [CLOSE])
    assert len(o.attempts) == 1 and o.transport is not None and o.transport["client_certificate_sent"]
    return o


PRODUCERS: dict[str, tuple[Callable[[Lab], Outcome], str, str | None]] = {
    "nps_discard_after_primary_auth": (nps_discard_after_primary_auth, "discard", None),
    "no_reply": (no_reply, "discard", None),
    "replies_match_no_request": (replies_match_no_request, "discard", None),
    "nps_reject_after_primary_auth": (nps_reject_after_primary_auth, "reject", None),
    "otp_rejected": (otp_rejected, "reject", None),
    "access_reject": (access_reject, "reject", None),
    "account_restricted": (account_restricted, "reject", None),
    "otp_challenge": (otp_challenge, "challenge", None),
    "late_answer_beyond_client_timeout": (late_answer_beyond_client_timeout, "accept", None),
    "answer_outside_window": (answer_outside_window, "accept", None),
    "slow_answer": (slow_answer, "accept", None),
    "bad_authenticator": (bad_authenticator, "error", "bad_authenticator"),
    "port_unreachable": (port_unreachable, "error", "unreachable"),
    "client_certificate_rejected": (client_certificate_rejected, "reject", None),
    "eap_credentials_rejected": (eap_credentials_rejected, "reject", None),
    "server_certificate_untrusted": (server_certificate_untrusted, "error", "tls"),
    "server_name_mismatch": (server_name_mismatch, "error", "tls"),
    "server_certificate_expired": (server_certificate_expired, "error", "tls"),
    "server_certificate_wrong_purpose": (server_certificate_wrong_purpose, "error", "tls"),
    "tls_handshake_failed": (tls_handshake_failed, "error", "tls"),
    "cryptobinding_invalid": (cryptobinding_invalid, "error", "cryptobinding"),
    "mppe_mismatch": (mppe_mismatch, "error", "mppe_mismatch"),
    "mppe_unverified": (mppe_unverified, "error", "eap"),
    "eap_success_missing": (eap_success_missing, "error", "eap"),
    "mschapv2_server_proof_failed": (mschapv2_server_proof_failed, "error", "mschapv2"),
    "eap_protocol_error": (eap_protocol_error, "error", "eap"),
    "mppe_absent": (mppe_absent, "accept", None),
    "message_authenticator_absent": (message_authenticator_absent, "accept", None),
    "server_certificate_expiring": (server_certificate_expiring, "accept", None),
    "client_certificate_expiring": (client_certificate_expiring, "accept", None),
    "internal_error": (internal_error, "error", "internal"),
    "authentication_deadline": (authentication_deadline, "error", "deadline"),
    "malformed_reply": (malformed_reply, "error", "malformed"),
    "eap_stalled": (eap_stalled, "discard", None),
    "server_refused_tls": (server_refused_tls, "reject", None),
    "eap_method_not_offered": (eap_method_not_offered, "reject", None),
    "mfa_not_enforced": (mfa_not_enforced, "accept", None),
    "expectation_unmet": (expectation_unmet, "accept", None),
    "status_server_unanswered": (status_server_unanswered, "discard", None),
    "accounting_unanswered": (accounting_unanswered, "discard", None),
    "radsec_tls_failed": (radsec_tls_failed, "error", "radsec"),
    "radsec_server_certificate_expiring": (radsec_server_certificate_expiring, "accept", None),
    "radsec_client_certificate_expiring": (radsec_client_certificate_expiring, "accept", None),
    "radsec_connection_closed": (radsec_connection_closed, "error", "radsec"),
}


@pytest.mark.parametrize("code", list(PRODUCERS))
def test_the_wire_signature_produces_the_catalogue_code(lab: Lab, code: str) -> None:
    producer, result, error_kind = PRODUCERS[code]
    o = producer(lab)
    codes = [d["code"] for d in o.diagnosis]
    assert code in codes, o.to_json()
    assert (o.result, o.error_kind) == (result, error_kind), o.to_json()
    if result != "accept":
        assert codes[0] == code, codes  # the failure's own entry leads the diagnosis
    rendered = next(d for d in o.diagnosis if d["code"] == code)
    entry = CATALOGUE[code]
    assert rendered["checks"] == list(entry.checks)
    assert rendered["text"].startswith(entry.title) and "Check: " in rendered["text"]
    assert DEFAULT_PASSWORD not in o.to_json() and DEFAULT_SECRET not in o.to_json()


def test_every_catalogue_entry_has_a_producer() -> None:
    """A new catalogue entry without a test that produces its signature fails here."""
    assert set(PRODUCERS) == set(CATALOGUE)
