"""EAP edges of `auth`, in process over real UDP on 127.0.0.1 (issue 3, "Bad input" and robustness).

A rogue server that sends garbage, loops its challenges or announces a 1 GB TLS
message must end in an error Outcome (never an exception), within the client's
deadline and bounded memory, ended by the probe itself. A server whose
Access-Accept carries the wrong MS-MPPE keys is an error (mppe_mismatch); one
that carries none is an accept with a warning.

The rogue servers sign every reply correctly (Response Authenticator and
Message-Authenticator), so only the EAP content is wrong: the probe has to judge
the EAP layer, not the RADIUS one.
"""

from __future__ import annotations

import asyncio
import copy
import os
import random
import tracemalloc
from collections.abc import Callable

import pytest

from probe.model import ProbeConfig, Secret, TlsOptions
from probe.drivers.aio import authenticate
from probe.diagnosis import CATALOGUE
from probe.eap.packet import EapPacket, EapType
from probe.emulator.config import (
    DEFAULT_PASSWORD,
    DEFAULT_SECRET,
    EapSettings,
    EmulatedUser,
    default_config,
)
from probe.emulator.server import NpsEmulator, _Answer
from probe.outcome import Outcome
from probe.pki import Pki
from probe.radius import packet as pk
from probe.radius.transport import RetryPolicy
from tests.helpers import emulator, rogue, run

SECRET = DEFAULT_SECRET.encode()
POLICY = RetryPolicy(timeout_s=5.0, retries=0, listen_s=0.0)
"""One transmission per round with a 5 s deadline: every answer here is immediate on loopback."""

EAP_TLS_START = bytes((0x20,))  # Flags: S
METHODS = ("eap-tls", "peap-mschapv2", "peap-tls")


@pytest.fixture(scope="module")
def lab(lab_pki: Pki) -> Pki:
    return lab_pki  # the session's PKI (tests/conftest.py): a certificate for every emulator user


def probe_cfg(lab: Pki, port: int, method: str = "eap-tls", user: str = "alice", **kw: object) -> ProbeConfig:
    tls = TlsOptions(ca=str(lab.ca), server_name="nps.lab.test")
    if method != "peap-mschapv2":
        tls.cert, tls.key = str(lab.users[user].cert), str(lab.users[user].key)
    kw.setdefault("policy", POLICY)
    return ProbeConfig(address=("127.0.0.1", port), secret=Secret(SECRET), method=method, identity=user,
                       password=Secret(DEFAULT_PASSWORD.encode()), tls=tls, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# A scripted rogue EAP server


class Script:
    """Answers the n-th Access-Request (n from 0) with an Access-Challenge carrying ``eap_for(n, request)``.

    Every reply is correctly signed and carries a fresh State, as a real server's would.
    ``seen`` counts the Access-Requests that reached the server, so a test can prove the
    probe stopped by itself (nothing arrives after the Outcome).
    """

    def __init__(self, eap_for: Callable[[int, pk.Packet], bytes | None], code: int = pk.ACCESS_CHALLENGE) -> None:
        self.eap_for = eap_for
        self.code = code
        self.seen = 0

    def __call__(self, request: pk.Packet) -> bytes | None:
        n = self.seen
        self.seen += 1
        eap = self.eap_for(n, request)
        attrs: list[pk.Attr] = pk.eap_message_attrs(eap) if eap is not None else []
        if self.code == pk.ACCESS_CHALLENGE:
            attrs.append((pk.STATE, os.urandom(16)))
        return pk.build_reply(self.code, request, attrs, SECRET, message_authenticator=True)


def peer_eap_id(request: pk.Packet) -> int:
    """The identifier of the EAP-Response the probe sent (the next request should differ)."""
    eap = request.eap()
    assert eap is not None and len(eap) >= 4, "the probe sent an Access-Request without EAP-Message"
    return eap[1]


def req(n: int, eap_type: int, data: bytes = b"") -> bytes:
    return EapPacket.request(n % 256, eap_type, data).to_bytes()


def more_to_come(request: pk.Packet) -> bool:
    """The probe's EAP-TLS/PEAP response is a fragment with M set: a server must ACK it first.

    (A TLS 1.3 ClientHello with a post-quantum key share is larger than one 1500-byte fragment.)
    """
    eap = request.eap() or b""
    return len(eap) > 5 and eap[4] in (EapType.TLS, EapType.PEAP) and bool(eap[5] & 0x40)


class Acking:
    """ACKs every fragment of the probe's flight, as a real server does; ``then(k, request)`` answers the rest.

    ``k`` counts the answers ``then`` gave (0 first), so scripts say "the k-th message" whatever the
    probe's fragment size; ``acks`` counts the ACK rounds.
    """

    def __init__(self, then: Callable[[int, pk.Packet], bytes | None], eap_type: int = EapType.TLS) -> None:
        self.then = then
        self.eap_type = eap_type
        self.k = 0
        self.acks = 0

    def __call__(self, n: int, request: pk.Packet) -> bytes | None:
        if more_to_come(request):
            self.acks += 1
            return req(peer_eap_id(request) + 1, self.eap_type, b"\x00")  # flags 0: an ACK
        k, self.k = self.k, self.k + 1
        return self.then(k, request)


def tls_start_then(then: Callable[[int, pk.Packet], bytes | None], eap_type: int = EapType.TLS) -> Acking:
    """First message: EAP-TLS (or PEAP) Start; the k-th after it: ``then(k, request)``, k from 1."""
    def eap_for(k: int, request: pk.Packet) -> bytes | None:
        return req(1, eap_type, EAP_TLS_START) if k == 0 else then(k, request)
    return Acking(eap_for, eap_type)


def converse(lab: Pki, script: Script, method: str = "eap-tls", **kw: object) -> tuple[Outcome, ProbeConfig, int]:
    """Run one in-process authentication against the script; (Outcome, config, requests seen after it ended)."""
    async def go() -> tuple[Outcome, ProbeConfig, int]:
        async with rogue(script) as addr:
            cfg = probe_cfg(lab, addr[1], method, **kw)
            outcome = await authenticate(cfg)
            seen_at_end = script.seen
            await asyncio.sleep(0.2)  # anything still in flight from the probe would arrive now
            return outcome, cfg, script.seen - seen_at_end
    return run(go())


def assert_error_outcome(o: Outcome, cfg: ProbeConfig, kinds: tuple[str, ...]) -> None:
    """An error Outcome of one of ``kinds``, with a catalogue diagnosis, ended by the probe (not by a timeout)."""
    assert o.result == "error", o.to_json()
    assert o.error_kind in kinds, o.to_json()
    assert o.error_detail, "an error Outcome names its reason"
    codes = [d["code"] for d in o.diagnosis]
    assert codes and codes[0] in CATALOGUE and codes[0] != "internal_error", codes
    assert not o.expectation_met and o.exit_code == 2
    assert 1 <= o.round_trips <= cfg.round_limit
    assert o.client_timeout_s is not None and not o.late
    assert o.retransmissions == 0  # every round was answered: the probe, not a timeout, ended it
    assert [a.round for a in o.attempts] == list(range(1, o.round_trips + 1))  # one send per round ...
    assert all(a.code is not None and a.answered_s is not None for a in o.attempts)  # ... each one answered
    o.to_json()  # the Outcome serialises whatever the server did


# ---------------------------------------------------------------------------
# Garbage


GARBAGE = {
    # name: (eap_for, expected error kinds, words expected in the detail)
    "random_bytes": (lambda n, r: random.Random(7).randbytes(61), ("eap",), "EAP"),
    "random_bytes_request_code": (lambda n, r: b"\x01" + random.Random(11).randbytes(40), ("eap",), "Length"),
    "truncated_header": (lambda n, r: b"\x01\x05\x00", ("eap",), "truncated EAP header"),
    "length_longer_than_data": (lambda n, r: b"\x01\x05\x00\x40\x0d\x20", ("eap",), "Length"),
    "unknown_code": (lambda n, r: b"\x09\x05\x00\x04", ("eap",), "Code"),
    "response_code_from_server": (lambda n, r: EapPacket.response(5, EapType.TLS, EAP_TLS_START).to_bytes(),
                                  ("eap",), "RESPONSE"),
    "request_type_zero": (lambda n, r: b"\x01\x05\x00\x05\x00", ("eap",), "Type 0"),
    "nak_request": (lambda n, r: req(5, EapType.NAK, b"\x0d"), ("eap",), "Nak"),
    "success_inside_challenge": (lambda n, r: EapPacket.success(5).to_bytes(), ("eap",), "EAP-Success"),
    "failure_inside_challenge": (lambda n, r: EapPacket.failure(5).to_bytes(), ("eap",), "ended"),
    "challenge_without_eap": (lambda n, r: None, ("eap",), "without EAP-Message"),
    "md5_after_tls_started": (tls_start_then(lambda n, r: req(2, EapType.MD5_CHALLENGE, b"\x10" + bytes(16))),
                              ("eap",), "unexpected EAP type"),
    "tls_request_before_start": (lambda n, r: req(1, EapType.TLS, b"\x00\x16\x03\x03\x00\x01\x00"), ("eap", "tls"),
                                 "Start"),
    "tls_flags_only_length_truncated": (tls_start_then(lambda n, r: req(2, EapType.TLS, b"\x80\x00\x00")),
                                        ("tls",), "Length"),
    "tls_random_records": (tls_start_then(lambda n, r: req(2, EapType.TLS, b"\x00" + random.Random(3).randbytes(300))),
                           ("tls",), "TLS"),
    "tls_alert_record_for_clienthello": (
        # A fatal handshake_failure alert record as the "ServerHello": the server refusing
        # us is acknowledged, and then the server goes on challenging instead of failing.
        tls_start_then(lambda k, r: req(k + 1, EapType.TLS, b"\x00\x15\x03\x03\x00\x02\x02\x28") if k == 1
                       else req(k + 1, EapType.TLS, b"\x00\x16\x03\x03\x00\x01\x00")),
        ("tls",), "the EAP-TLS session has already failed: server sent alert: handshake failure",
    ),
    "tls_length_mismatch": (tls_start_then(lambda n, r: req(2, EapType.TLS, b"\x80\x00\x00\x00\x10" + bytes(40))),
                            ("tls",), "announced"),
    # (a fresh identifier: the same bytes as our last ACK would be a retransmission, answered again)
    "empty_tls_message_after_clienthello": (tls_start_then(lambda k, r: req(40 + k, EapType.TLS, b"\x00")),
                                            ("tls",), "empty"),
}


@pytest.mark.parametrize("case", list(GARBAGE))
def test_garbage_from_a_correctly_signed_server_is_an_error_outcome(lab: Pki, case: str) -> None:
    eap_for, kinds, words = GARBAGE[case]
    eap_for = copy.copy(eap_for)  # a fresh Acking per run: its message counter starts at 0 however often it runs
    o, cfg, after = converse(lab, Script(eap_for))
    assert_error_outcome(o, cfg, kinds)
    assert words.lower() in (o.error_detail or "").lower(), o.error_detail
    assert after == 0
    assert o.message_authenticator == "valid" and o.mppe == "absent"


@pytest.mark.parametrize("method", ["peap-mschapv2", "peap-tls"])
def test_md5_after_peap_started_is_an_eap_error(lab: Pki, method: str) -> None:
    script = Script(tls_start_then(lambda k, r: req(2, EapType.MD5_CHALLENGE, b"\x10" + bytes(16)), EapType.PEAP))
    o, cfg, _ = converse(lab, script, method)
    assert_error_outcome(o, cfg, ("eap",))
    assert "unexpected EAP type" in (o.error_detail or "")


def test_garbage_eap_in_access_accept_is_an_error_not_an_accept(lab: Pki) -> None:
    script = Script(lambda n, r: b"\x03\x05\x00", code=pk.ACCESS_ACCEPT)
    o, cfg, _ = converse(lab, script)
    assert_error_outcome(o, cfg, ("eap",))
    assert o.round_trips == 1


def test_access_accept_with_eap_success_before_the_method_is_an_error(lab: Pki) -> None:
    """A server that skips authentication entirely must not pass as an accept."""
    script = Script(lambda n, r: EapPacket.success(peer_eap_id(r)).to_bytes(), code=pk.ACCESS_ACCEPT)
    o, cfg, _ = converse(lab, script)
    assert_error_outcome(o, cfg, ("eap",))
    assert "EAP-Success before" in (o.error_detail or "")


def test_bare_access_accept_before_any_eap_method_is_not_a_clean_pass(lab: Pki) -> None:
    """The server answered our Identity with Access-Accept: no certificate was exchanged, nobody was verified.

    A probe that reports this as "accept, expectation met, exit 0" hides a server that lets anyone in
    (and the server's certificate, which --ca asked to validate, was never seen).
    """
    o, _, _ = converse(lab, Script(lambda n, r: None, code=pk.ACCESS_ACCEPT))
    assert o.tls is not None and o.tls["validation"] == "not performed"
    assert (o.result, o.error_kind, o.exit_code, o.expectation_met) == ("error", "eap", 2, False), o.to_json()
    assert [d["code"] for d in o.diagnosis] == ["eap_protocol_error"]


def test_unexpected_type_detail_is_words_not_a_python_repr(lab: Pki) -> None:
    script = Script(tls_start_then(lambda k, r: req(2, EapType.MD5_CHALLENGE, b"\x10" + bytes(16))))
    o, _, _ = converse(lab, script)
    detail = o.error_detail or ""
    assert "unexpected EAP type" in detail and "4" in detail
    assert "<" not in detail and "EapType." not in detail, detail


def test_garbage_eap_in_access_reject_is_still_a_reject(lab: Pki) -> None:
    """A Reject is a Reject whatever EAP it carries: the server's verdict stands."""
    o, _, _ = converse(lab, Script(lambda n, r: b"\x04", code=pk.ACCESS_REJECT), expected="reject")
    assert o.result == "reject" and o.error_kind is None and o.expectation_met


# ---------------------------------------------------------------------------
# Servers that loop


LOOPS = {
    # name: (eap_for, expected kinds); each answer is a well-formed request that never ends the exchange
    "new_identity_request_each_round": (lambda n, r: req(n + 1, EapType.IDENTITY), ("eap",)),
    "fresh_tls_start_each_round": (lambda n, r: req(n + 1, EapType.TLS, EAP_TLS_START), ("eap",)),
    "fresh_tls_start_same_identifier": (lambda n, r: req(1, EapType.TLS, EAP_TLS_START), ("eap",)),
    "notification_each_round": (lambda n, r: req(n + 1, EapType.NOTIFICATION, b"please wait"), ("eap",)),
    "md5_despite_our_nak": (lambda n, r: req(n + 1, EapType.MD5_CHALLENGE, b"\x10" + bytes(16)), ("eap",)),
    "identical_request_repeated": (lambda n, r: req(1, EapType.IDENTITY), ("eap",)),
    "endless_fragments_without_length": (
        tls_start_then(lambda n, r: req(n + 1, EapType.TLS, b"\x40" + bytes(1400))), ("tls", "eap")),
    "endless_small_fragments": (
        tls_start_then(lambda n, r: req(n + 1, EapType.TLS, b"\x40" + bytes(100))), ("tls", "eap")),
}


@pytest.mark.parametrize("case", list(LOOPS))
def test_a_looping_server_is_stopped_by_the_probe(lab: Pki, case: str) -> None:
    eap_for, kinds = LOOPS[case]
    script = Script(eap_for)
    o, cfg, after = converse(lab, script)
    assert_error_outcome(o, cfg, kinds)
    assert o.round_trips <= cfg.round_limit
    assert script.seen == o.round_trips + o.retransmissions  # the probe sent nothing more
    assert after == 0


def test_max_rounds_is_the_last_line_of_defence(lab: Pki) -> None:
    """A smaller max_rounds ends the identical-request loop exactly there."""
    script = Script(lambda n, r: req(1, EapType.IDENTITY))
    o, cfg, _ = converse(lab, script, max_rounds=7)
    assert_error_outcome(o, cfg, ("eap",))
    assert o.round_trips == 7 and script.seen == 7
    assert "7 rounds" in (o.error_detail or "")


# ---------------------------------------------------------------------------
# A 1 GB TLS message


ONE_GB = 2**30


def measured(lab: Pki, script: Script, method: str = "eap-tls") -> tuple[Outcome, ProbeConfig, int]:
    """Run the conversation under tracemalloc; returns (Outcome, config, peak bytes of Python allocations)."""
    async def go() -> tuple[Outcome, ProbeConfig]:
        async with rogue(script) as addr:
            cfg = probe_cfg(lab, addr[1], method)
            return await authenticate(cfg), cfg
    tracemalloc.start()
    try:
        o, cfg = run(go())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return o, cfg, peak


def big_fragment(eap_type: int, length: int = ONE_GB) -> Acking:
    """After the Start, a first fragment with L and M set, an announced length and 1000 bytes of data."""
    return tls_start_then(lambda k, r: req(k + 1, eap_type, b"\xc0" + length.to_bytes(4, "big") + bytes(1000)),
                          eap_type)


@pytest.mark.parametrize("method, eap_type", [("eap-tls", EapType.TLS), ("peap-mschapv2", EapType.PEAP),
                                               ("peap-tls", EapType.PEAP)])
def test_one_gigabyte_tls_message_is_refused_with_bounded_memory(lab: Pki, method: str, eap_type: int) -> None:
    flow = big_fragment(eap_type)
    o, cfg, peak = measured(lab, Script(flow), method)
    assert_error_outcome(o, cfg, ("tls",))
    assert str(ONE_GB) in (o.error_detail or "") and "limit" in (o.error_detail or "")
    assert flow.k == 2 and o.round_trips == 2 + flow.acks  # refused at the first fragment
    assert peak < 4 * 2**20, f"peak Python memory {peak} bytes"


@pytest.mark.parametrize("length", [65536 + 1, 2**32 - 1])
def test_announced_length_just_past_the_cap_or_at_the_maximum_is_refused(lab: Pki, length: int) -> None:
    flow = big_fragment(EapType.TLS, length=length)
    o, cfg, peak = measured(lab, Script(flow))
    assert_error_outcome(o, cfg, ("tls",))
    assert str(length) in (o.error_detail or "") and flow.k == 2 and peak < 4 * 2**20


def test_fragments_without_length_stop_at_the_reassembly_cap(lab: Pki) -> None:
    """No L flag at all: the data received is what the cap bounds."""
    script = Script(tls_start_then(lambda n, r: req(n + 1, EapType.TLS, b"\x40" + bytes(3000))))
    o, cfg, peak = measured(lab, script)
    assert_error_outcome(o, cfg, ("tls",))
    assert "limit" in (o.error_detail or "") and o.round_trips < 30
    assert peak < 4 * 2**20


def test_fragments_exceeding_their_own_announcement_are_refused(lab: Pki) -> None:
    """L announces 2000 bytes, then the server keeps sending 1000-byte fragments with M."""
    def then(k: int, r: pk.Packet) -> bytes:
        head = b"\xc0" + (2000).to_bytes(4, "big") if k == 1 else b"\x40"
        return req(k + 1, EapType.TLS, head + bytes(1000))
    flow = tls_start_then(then)
    o, cfg, _ = measured(lab, Script(flow))
    assert_error_outcome(o, cfg, ("tls",))
    assert "announced" in (o.error_detail or "") and flow.k == 4  # Start, 1000, 1000, then 1000 too many


# ---------------------------------------------------------------------------
# MPPE keys in the Access-Accept


def _is_mppe(attr: pk.Attr, vendor_type: int) -> bool:
    if attr[0] != pk.VENDOR_SPECIFIC:
        return False
    vendor, subs = pk.split_vsa(attr[1])
    return vendor == pk.VENDOR_MICROSOFT and any(t == vendor_type for t, _ in subs)


def _salted(key: bytes, request: pk.Packet) -> bytes:
    return pk.salt_encrypt(key, SECRET, request.authenticator, bytes((0x80 | os.urandom(1)[0],)) + os.urandom(1))


class MppeTamperingNps(NpsEmulator):
    """The emulator, with its Access-Accept's MS-MPPE keys rewritten by ``tamper``."""

    def __init__(self, lab: Pki, tamper: Callable[[list[pk.Attr], pk.Packet], list[pk.Attr]]) -> None:
        config = default_config()
        config.eap = EapSettings.from_pki(lab.directory)
        self.tamper_with = tamper
        self.tampered = 0
        super().__init__(config)

    def _accept(self, ans: _Answer, user: EmulatedUser, text: str) -> None:
        assert any(_is_mppe(a, pk.MS_MPPE_SEND_KEY) for a in ans.accept_attrs), "the emulator sent no keys to tamper"
        ans.accept_attrs = self.tamper_with(list(ans.accept_attrs), ans.request)
        self.tampered += 1
        super()._accept(ans, user, text)


def random_send_key(attrs: list[pk.Attr], request: pk.Packet) -> list[pk.Attr]:
    fake = pk.vsa(pk.VENDOR_MICROSOFT, pk.MS_MPPE_SEND_KEY, _salted(os.urandom(32), request))
    return [fake if _is_mppe(a, pk.MS_MPPE_SEND_KEY) else a for a in attrs]


def swapped_keys(attrs: list[pk.Attr], request: pk.Packet) -> list[pk.Attr]:
    """Send and Recv exchanged: right bytes, wrong direction (the VPN would encrypt with the wrong key)."""
    plain = pk.mppe_keys(pk.Packet(pk.ACCESS_ACCEPT, 0, bytes(16), attrs), request.authenticator, SECRET)
    assert plain is not None
    send, recv = plain
    rest = [a for a in attrs if not (_is_mppe(a, pk.MS_MPPE_SEND_KEY) or _is_mppe(a, pk.MS_MPPE_RECV_KEY))]
    return rest + [pk.vsa(pk.VENDOR_MICROSOFT, pk.MS_MPPE_SEND_KEY, _salted(recv, request)),
                   pk.vsa(pk.VENDOR_MICROSOFT, pk.MS_MPPE_RECV_KEY, _salted(send, request))]


def truncated_recv_key(attrs: list[pk.Attr], request: pk.Packet) -> list[pk.Attr]:
    """The Recv-Key carries 16 of its 32 bytes: a prefix of the right key is still the wrong key."""
    plain = pk.mppe_keys(pk.Packet(pk.ACCESS_ACCEPT, 0, bytes(16), attrs), request.authenticator, SECRET)
    assert plain is not None
    short = pk.vsa(pk.VENDOR_MICROSOFT, pk.MS_MPPE_RECV_KEY, _salted(plain[1][:16], request))
    return [short if _is_mppe(a, pk.MS_MPPE_RECV_KEY) else a for a in attrs]


def no_keys(attrs: list[pk.Attr], request: pk.Packet) -> list[pk.Attr]:
    return [a for a in attrs if not (_is_mppe(a, pk.MS_MPPE_SEND_KEY) or _is_mppe(a, pk.MS_MPPE_RECV_KEY))]


def against_tampering(lab: Pki, method: str, tamper: Callable[[list[pk.Attr], pk.Packet], list[pk.Attr]]) -> Outcome:
    async def go() -> Outcome:
        em = MppeTamperingNps(lab, tamper)
        await em.start("127.0.0.1", 0)
        try:
            o = await authenticate(probe_cfg(lab, em.address[1], method))
        finally:
            await em.stop()
        assert em.tampered == 1
        return o
    return run(go())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("tamper", [random_send_key, swapped_keys, truncated_recv_key])
def test_wrong_mppe_keys_are_an_mppe_mismatch_error(lab: Pki, method: str,
                                                    tamper: Callable[[list[pk.Attr], pk.Packet], list[pk.Attr]]) -> None:
    o = against_tampering(lab, method, tamper)
    assert (o.result, o.error_kind, o.mppe) == ("error", "mppe_mismatch", "mismatch"), o.to_json()
    assert [d["code"] for d in o.diagnosis] == ["mppe_mismatch"]
    assert o.exit_code == 2 and not o.expectation_met
    assert o.tls is not None and o.tls["validation"] == "ok"  # the rest of the exchange was sound


@pytest.mark.parametrize("method", METHODS)
def test_accept_without_mppe_keys_is_an_accept_with_a_warning(lab: Pki, method: str) -> None:
    o = against_tampering(lab, method, no_keys)
    assert (o.result, o.error_kind, o.mppe) == ("accept", None, "absent"), o.to_json()
    assert any("MS-MPPE" in w for w in o.warnings), o.warnings
    assert o.expectation_met


@pytest.mark.parametrize("method", METHODS)
def test_untampered_emulator_keys_match(lab: Pki, method: str) -> None:
    """The control: the same harness with the keys left alone gives mppe match."""
    o = against_tampering(lab, method, lambda attrs, request: attrs)
    assert (o.result, o.mppe) == ("accept", "match"), o.to_json()


# ---------------------------------------------------------------------------
# The round limit against a legitimate small-MTU exchange

@pytest.mark.parametrize("method, tls_max, mtu", [
    ("eap-tls", "1.3", 100),  # 88 rounds against the emulator
    ("peap-tls", "1.2", 200),  # 70 rounds
    ("eap-tls", "1.2", 100),  # 56 rounds: under the limit
    ("peap-mschapv2", "1.2", 100),  # 38 rounds
])
def test_the_smallest_accepted_framed_mtu_still_authenticates(lab: Pki, method: str, tls_max: str, mtu: int) -> None:
    """Every Framed-MTU the probe accepts must be able to finish a normal exchange with default settings."""
    config = default_config()
    config.eap = EapSettings.from_pki(lab.directory, tls_max_eap_tls="1.3")

    async def go() -> Outcome:
        async with emulator(config) as em:
            cfg = probe_cfg(lab, em.address[1], method, framed_mtu=mtu)
            cfg.tls.tls_max = tls_max
            return await authenticate(cfg)
    o = run(go())
    assert (o.result, o.mppe, o.error_detail) == ("accept", "match", None), o.error_detail
    assert o.tls is not None and o.tls["version"] == f"TLSv{tls_max}"

