"""PEAPv0 phase 2, written once (probe/eap/peap_common.py), as both roles apply it.

The peer (probe/eap/peap.py Phase2) and the emulator's server
(probe/emulator/peap_server.py PeapPhase2) are run here against each other on
plaintext tunnel data, with a fixed tunnel key instead of a TLS session: the
header compression both sides put on the wire, the TLV-set rules both refuse
(unknown mandatory TLVs, not exactly one Result, more than one Cryptobinding),
and the compound keys and MS-MPPE keys checked against [MS-PEAP] 4.4.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import pytest

from probe.eap import peap_common as pc
from probe.eap.crypto import MppeKeys, Role, split_mppe_keys
from probe.eap.cryptobinding import (
    TLV_CRYPTOBINDING,
    TLV_RESULT,
    CompoundKeys,
    ResultStatus,
    build_cryptobinding_request,
    build_result_tlv,
    build_tlv,
    derive_compound_keys,
    inner_session_key,
    mppe_keys_from_csk,
    parse_tlvs,
)
from probe.eap.packet import EapCode, EapError, EapPacket, EapType
from probe.eap.peap import EapPeerError, MschapV2Peer, Phase2
from probe.emulator.fast_reconnect import FastReconnectGrant, FastReconnectStats
from probe.emulator.nps_rules import Reason
from probe.emulator.peap_server import INNER_METHODS, Finished, PeapPhase2

PASSWORD = "Lab-Password-1"
TUNNEL_KEY = bytes(range(128))  # the 128-byte TLS key block: TK is its first 60 bytes, the MSK its first 64
PEAP_ID = 40


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# [MS-PEAP] 4.4.1.3.2.3 (IPMK|CMK) and 4.4.3 (the server's MPPE keys from the CSK), as in test_cryptobinding.py
T1 = h("3A 91 1C 25 54 73 E8 3E 9A 0C C3 33 AE 1F 8A 35 CD C7 41 63")
T2 = h("E7 F6 0F 6C 65 EF 71 C2 64 42 AA AC A2 B6 F1 EB 4F 25 EC A3")
T3 = h("33 55 35 3B 69 20 D0 74 C7 82 E4 75 DF B0 99 9D 4D B4 67 EB")
VECTOR_KEYS = CompoundKeys(ipmk=T1 + T2, cmk=T3)
SERVER_RECV_KEY = h("6A 02 D7 82 20 1B C7 13 8B F8 EF F7 33 B4 96 97 0D 7C AB 30 0A C9 57 72 78 E1 DD D5 AE F7 66 97")
SERVER_SEND_KEY = h("17 52 D4 E5 84 A1 C8 95 03 9B 4D 05 E3 BC 9A 84 84 DD C2 AA 6E 2C E1 62 76 5C 40 68 BF F6 5A 45")


@dataclass(frozen=True)
class Policy:
    """What PeapPhase2 reads of an EapServerPolicy (no certificate files needed here)."""

    peap_inner: tuple[str, ...] = ("mschapv2",)
    cryptobinding: str = "optional"
    server_name: str = "NPS"

    @property
    def inner_types(self) -> tuple[EapType, ...]:
        return tuple(INNER_METHODS[name] for name in self.peap_inner)


class FixedTunnel:
    """Stands in for the outer EapTlsSession: only its key block is read in phase 2."""

    def key_material(self) -> bytes:
        return TUNNEL_KEY


def counter_bytes() -> object:
    counter = itertools.count(1)
    return lambda n: bytes((next(counter) & 0xFF,)) * n


def server(policy: Policy | None = None, users: dict[str, str] | None = None,
           stats: FastReconnectStats | None = None) -> PeapPhase2:
    return PeapPhase2(policy or Policy(), (users if users is not None else {"alice": PASSWORD}).get,
                      FixedTunnel(), inner_tls=None, framed_mtu=1500,  # type: ignore[arg-type]  # a stand-in tunnel
                      random_bytes=counter_bytes(), stats=stats)  # type: ignore[arg-type]


def peer(password: str = PASSWORD, *, resumed: bool = False) -> Phase2:
    return Phase2(MschapV2Peer("alice", password), "alice", TUNNEL_KEY, resumed=resumed)


def outer(identifier: int) -> EapPacket:
    """The PEAP request a tunnel message arrived in (its Code/Identifier go to header-less inner packets)."""
    return EapPacket.request(identifier, EapType.PEAP, b"\x00")


@dataclass
class Run:
    to_peer: list[bytes]
    to_server: list[bytes]
    end: Finished


def run(srv: PeapPhase2, p: Phase2, *, grant: FastReconnectGrant | None = None) -> Run:
    """Plaintext tunnel messages back and forth until the server finishes."""
    identifier = PEAP_ID
    message = srv.start(identifier, grant)
    to_peer, to_server = [message], []
    for _ in range(20):
        answer = p.process(message, outer(identifier))
        to_server.append(answer)
        identifier += 1
        reply = srv.receive(answer, identifier)
        if isinstance(reply, Finished):
            return Run(to_peer, to_server, reply)
        to_peer.append(reply)
        message = reply
    raise AssertionError("phase 2 did not finish")


# --------------------------------------------------------------------------- the roles agree


@pytest.mark.parametrize("mode, binding", [("off", "absent"), ("optional", "valid"), ("required", "valid")])
def test_full_phase_2_both_roles_agree_on_keys(mode: str, binding: str) -> None:
    srv, p = server(Policy(cryptobinding=mode)), peer()
    r = run(srv, p)
    assert r.end.success and srv.account == "alice" and p.succeeded and p.primary_auth_done
    assert p.cryptobinding == binding
    assert r.end.mppe == p.mppe() and r.end.mppe is not None
    if binding == "absent":  # no cryptobinding: the TLS key block's MSK halves
        assert r.end.mppe == split_mppe_keys(TUNNEL_KEY[:64], Role.SERVER)
    else:  # cryptobinding: the CSK of IPMK from TK and the inner MS-CHAPv2 MSK
        keys = derive_compound_keys(TUNNEL_KEY[:60], inner_session_key(p.inner.msk()))
        assert r.end.mppe == mppe_keys_from_csk(keys, Role.SERVER) != split_mppe_keys(TUNNEL_KEY[:64], Role.SERVER)


def test_header_compression_on_the_wire() -> None:
    r = run(server(), peer())
    identity_request, challenge, success_request, result_request = r.to_peer
    assert identity_request == b"\x01"  # header-less Identity request: just the Type
    assert challenge[0] == EapType.MSCHAPV2 and success_request[0] == EapType.MSCHAPV2  # header-less
    identity_response, challenge_response, success_ack, result_response = r.to_server
    assert identity_response == b"\x01alice"
    assert challenge_response[0] == EapType.MSCHAPV2 and success_ack == b"\x1a\x03"
    # EAP-TLV keeps its header both ways ([MS-PEAP] 3.1.5.6)
    request, response = EapPacket.parse(result_request), EapPacket.parse(result_response)
    assert (request.code, request.type, response.code, response.type) == \
        (EapCode.REQUEST, EapType.TLV, EapCode.RESPONSE, EapType.TLV)
    assert [t.tlv_type for t in parse_tlvs(request.data)] == [TLV_RESULT, TLV_CRYPTOBINDING]


def test_wrong_password_ends_in_result_failure_on_both_sides() -> None:
    srv, p = server(), peer("not-it")
    r = run(srv, p)
    assert not r.end.success and r.end.reason is Reason.BAD_CREDENTIALS
    assert p.result == "failure" and p.failure is not None and "E=691" in p.failure and p.mppe() is None


def test_fast_reconnect_keys_agree_and_skip_the_inner_method() -> None:
    stats = FastReconnectStats()
    srv, p = server(stats=stats), peer(resumed=True)
    r = run(srv, p, grant=FastReconnectGrant(EapType.PEAP, EapType.MSCHAPV2, "alice"))
    assert len(r.to_peer) == 1 and r.end.success and srv.fast_reconnect and srv.account == "alice"
    assert p.primary_auth_done and p.cryptobinding == "valid"
    keys = pc.compound_keys(TUNNEL_KEY, None, inner_method_ran=False)
    assert keys == CompoundKeys(ipmk=TUNNEL_KEY[:40], cmk=TUNNEL_KEY[40:60])  # [MS-PEAP] 3.1.5.5.2.2
    assert r.end.mppe == p.mppe() == mppe_keys_from_csk(keys, Role.SERVER)


def test_a_peer_that_is_not_resumed_declines_the_fast_reconnect_and_gets_a_full_phase_2() -> None:
    stats = FastReconnectStats()
    srv, p = server(stats=stats), peer(resumed=False)
    offer = srv.start(PEAP_ID, FastReconnectGrant(EapType.PEAP, EapType.MSCHAPV2, "alice"))
    with pytest.raises(EapPeerError) as caught:
        p.process(offer, outer(PEAP_ID))
    assert caught.value.state == "result" and caught.value.reply is not None
    again = srv.receive(caught.value.reply, PEAP_ID + 1)  # the peer's Result Failure
    assert again == b"\x01" and stats.refused == 1  # the inner Identity request: full phase 2 ([MS-PEAP] 3.3.5.4.7)


# --------------------------------------------------------------------------- the TLV-set rules, both roles

UNKNOWN_MANDATORY = build_tlv(9, b"\x00\x00", mandatory=True)
UNKNOWN_OPTIONAL = build_tlv(9, b"\x00\x00", mandatory=False)
SUCCESS, FAILURE = build_result_tlv(ResultStatus.SUCCESS), build_result_tlv(ResultStatus.FAILURE)
BINDING = build_cryptobinding_request(VECTOR_KEYS, bytes(32))

BROKEN_SETS = {
    "unknown mandatory TLV": (SUCCESS + UNKNOWN_MANDATORY, "unknown mandatory TLV type 9"),
    "no Result": (BINDING, "needs one Result TLV (got 0)"),
    "two Results": (SUCCESS + SUCCESS, "needs one Result TLV (got 2)"),
    "two Cryptobindings": (SUCCESS + BINDING + BINDING, "at most one Cryptobinding TLV (got 2)"),
    "truncated": (SUCCESS[:-1], "malformed EAP-TLV message"),
}


@pytest.mark.parametrize("name", BROKEN_SETS)
def test_read_tlvs_refuses(name: str) -> None:
    data, words = BROKEN_SETS[name]
    with pytest.raises(pc.PeapError, match=re.escape(words)) as caught:
        pc.read_tlvs(data)
    assert not isinstance(caught.value, ValueError) and isinstance(caught.value, EapError)


def test_read_tlvs_accepts_and_ignores_unknown_optional_tlvs() -> None:
    assert pc.read_tlvs(SUCCESS + UNKNOWN_OPTIONAL) == pc.TlvSet(ResultStatus.SUCCESS, None)
    got = pc.read_tlvs(FAILURE + BINDING)
    assert got.result is ResultStatus.FAILURE and got.cryptobinding is not None
    assert got.cryptobinding.tlv_type == TLV_CRYPTOBINDING


@pytest.mark.parametrize("name", BROKEN_SETS)
def test_the_peer_refuses_a_broken_tlv_set(name: str) -> None:
    data, words = BROKEN_SETS[name]
    p = peer(resumed=True)
    request = EapPacket.request(PEAP_ID, EapType.TLV, data).to_bytes()
    with pytest.raises(EapPeerError, match=re.escape(words)) as caught:
        p.process(request, outer(PEAP_ID))
    assert (caught.value.kind, caught.value.state) == ("eap", "result") and p.result is None


@pytest.mark.parametrize("name", BROKEN_SETS)
def test_the_server_refuses_a_broken_tlv_set(name: str) -> None:
    data, words = BROKEN_SETS[name]
    srv = server(stats=FastReconnectStats())
    srv.start(PEAP_ID, FastReconnectGrant(EapType.PEAP, EapType.MSCHAPV2, "alice"))  # straight to the Result TLV
    response = EapPacket.response(PEAP_ID, EapType.TLV, data).to_bytes()
    with pytest.raises(EapError, match=re.escape(words)):
        srv.receive(response, PEAP_ID + 1)


def test_the_server_refuses_a_header_less_tlv_response() -> None:
    srv = server(stats=FastReconnectStats())
    srv.start(PEAP_ID, FastReconnectGrant(EapType.PEAP, EapType.MSCHAPV2, "alice"))
    with pytest.raises(EapError, match="correctly compressed"):
        srv.receive(bytes((EapType.TLV,)) + SUCCESS, PEAP_ID + 1)


# --------------------------------------------------------------------------- compression


def test_decompress_takes_code_and_identifier_for_header_less_packets() -> None:
    assert pc.decompress(b"\x1a\x01\x07", EapCode.REQUEST, 9) == EapPacket.request(9, EapType.MSCHAPV2, b"\x01\x07")
    assert pc.decompress(b"\x01alice", EapCode.RESPONSE, 3) == EapPacket.response(3, EapType.IDENTITY, b"alice")
    tlv = EapPacket.response(4, EapType.TLV, SUCCESS)
    assert pc.decompress(tlv.to_bytes(), EapCode.RESPONSE, 99) == tlv  # its own header wins
    freeradius = EapPacket.request(5, EapType.IDENTITY).to_bytes()  # FreeRADIUS keeps the header on Identity
    assert pc.decompress(freeradius, EapCode.REQUEST, 9) == EapPacket.request(5, EapType.IDENTITY)


@pytest.mark.parametrize("packet", [
    EapPacket.request(1, EapType.IDENTITY), EapPacket.response(2, EapType.MSCHAPV2, b"\x02\x01"),
    EapPacket.response(3, EapType.NAK, b"\x0d"), EapPacket.request(4, EapType.TLV, SUCCESS),
    EapPacket.response(5, EapType.EXPANDED, bytes(7)),
])
def test_compress_then_decompress_is_the_identity(packet: EapPacket) -> None:
    wire = pc.compress(packet)
    assert len(wire) == len(packet) - (0 if packet.type in pc.HEADER_KEPT else 4)
    assert pc.decompress(wire, packet.code, packet.identifier) == packet


@pytest.mark.parametrize("data, words", [(b"", "empty inner"), (b"\x00abc", "reserved Type 0")])
def test_decompress_refuses(data: bytes, words: str) -> None:
    with pytest.raises(pc.PeapError, match=re.escape(words)):
        pc.decompress(data, EapCode.REQUEST, 1)


# --------------------------------------------------------------------------- keys against [MS-PEAP] 4.4


def test_session_mppe_with_cryptobinding_matches_ms_peap_4_4_3() -> None:
    keys = pc.session_mppe(TUNNEL_KEY, VECTOR_KEYS)
    assert keys == MppeKeys(send_key=SERVER_SEND_KEY, recv_key=SERVER_RECV_KEY)


def test_session_mppe_without_cryptobinding_is_the_tls_msk_split() -> None:
    keys = pc.session_mppe(TUNNEL_KEY, None)
    assert (keys.recv_key, keys.send_key) == (TUNNEL_KEY[:32], TUNNEL_KEY[32:64])  # server view, as EAP-TLS


def test_compound_keys_choice() -> None:
    msk = bytes(range(200, 255)) + bytes(9)
    full = pc.compound_keys(TUNNEL_KEY, msk, inner_method_ran=True)
    assert full == derive_compound_keys(TUNNEL_KEY[:60], msk[:32])
    assert pc.compound_keys(TUNNEL_KEY, None, inner_method_ran=True) == \
        derive_compound_keys(TUNNEL_KEY[:60], bytes(32))  # an inner method without keys: ISK of zeros
    assert pc.compound_keys(TUNNEL_KEY, msk, inner_method_ran=False) == \
        CompoundKeys(TUNNEL_KEY[:40], TUNNEL_KEY[40:60])  # fast reconnect ignores any MSK
    assert full != pc.compound_keys(TUNNEL_KEY[::-1], msk, inner_method_ran=True)
