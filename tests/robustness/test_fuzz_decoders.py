"""Hypothesis over every sans-IO decoder: arbitrary bytes raise only the module's own error types.

Bound: about 20 s on one core (a fixed number of derandomised examples per decoder, no
example database, so CI runs are repeatable and leave no files behind).  A decoder that
raises anything else (IndexError, struct.error, UnicodeDecodeError, ValueError from an enum)
on input a server controls would reach the conversation as an ``internal`` error instead of
a classification, which is the defect these properties catch.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.eap import cryptobinding as cb
from probe.eap import mschapv2, peap_common, tls_framing
from probe.eap.packet import EapCode, EapError, EapPacket, EapType, parse_expanded, parse_identity, parse_nak
from probe.radius import packet as pk
from probe.radius.dictionary import default_dictionary
from probe.radius.transport import Disposition, RetryPolicy, Round

FUZZ = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
SECRET = b"radius-probe-lab"
REQUEST = pk.build_request(7, b"\x11" * 16, [(pk.USER_NAME, b"alice")], SECRET)

blobs = st.binary(max_size=600)


def radius_like() -> st.SearchStrategy[bytes]:
    """Datagrams that get past the first length check often: a plausible header, then anything."""
    def build(code: int, ident: int, attrs: bytes, fix_len: bool, tail: bytes) -> bytes:
        length = 20 + len(attrs) if fix_len else len(tail) % 5000
        return struct.pack("!BBH", code, ident, length) + b"\x00" * 16 + attrs + tail
    attr = st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=40)).map(
        lambda t: bytes((t[0], t[1])) + t[2])
    return st.builds(build, st.sampled_from([1, 2, 3, 11, 0, 255]), st.sampled_from([7, 8]),
                     st.lists(attr, max_size=6).map(b"".join), st.booleans(), st.binary(max_size=8))


def _record(name: str, robust: Any, examples: int = 250) -> None:
    robust("fuzz", name, "only own errors", examples=examples)


# --------------------------------------------------------------------------- RADIUS


@FUZZ
@given(st.one_of(blobs, radius_like()))
def test_parse_packet(data: bytes) -> None:
    try:
        p = pk.parse_packet(data)
    except pk.PacketError as exc:
        assert exc.kind == "malformed" and exc.detail
        return
    assert 20 <= len(p.raw) <= 4096
    p.eap()  # joining EAP-Message never raises on a parsed packet
    for t, v in p.attributes:
        if t == pk.VENDOR_SPECIFIC:
            try:
                pk.split_vsa(v)
            except pk.PacketError:
                pass


@FUZZ
@given(st.one_of(blobs, radius_like()))
def test_verify_reply(data: bytes) -> None:
    try:
        reply = pk.verify_reply(data, REQUEST, SECRET)
    except pk.PacketError as exc:
        assert exc.kind in ("malformed", "bad_authenticator")
        return
    raise AssertionError(f"an unsigned random datagram verified: {reply}")


@FUZZ
@given(st.one_of(blobs, radius_like()), st.integers(0, 255))
def test_round_receive_never_raises(data: bytes, second: int) -> None:
    """The per-exchange machine the drivers feed: any datagram is a Disposition, never an exception."""
    rnd = Round(REQUEST, RetryPolicy(1.0, 0, 1.0), SECRET)
    rnd.poll(0.0)
    if len(data) >= 2 and second % 2:
        data = data[:1] + bytes((REQUEST.identifier,)) + data[2:]
    assert rnd.receive(data, 0.1) in (Disposition.IGNORED, Disposition.STRAY)
    assert not rnd.done


@FUZZ
@given(blobs, st.binary(min_size=16, max_size=16))
def test_salted_and_hidden_values(value: bytes, authenticator: bytes) -> None:
    for fn in (pk.salt_decrypt, pk.decrypt_user_password):
        try:
            fn(value, SECRET, authenticator)
        except pk.PacketError as exc:
            assert exc.kind == "malformed"


@FUZZ
@given(st.lists(st.tuples(st.sampled_from([(0, 1), (0, 18), (0, 25), (0, 27), (0, 4), (0, 8), (0, 95), (0, 64),
                                           (311, 16), (311, 25), (0, 61), (0, 85)]), blobs), max_size=6))
def test_dictionary_decode(values: list[tuple[tuple[int, int], bytes]]) -> None:
    """Every received value decodes for display without raising (bytes when it is not what the type says)."""
    d = default_dictionary()
    for (vendor, code), data in values:
        adef = d.by_key(vendor, code)
        if adef is not None:
            assert isinstance(d.decode(adef, data), (str, int, bytes))


# --------------------------------------------------------------------------- EAP


@FUZZ
@given(blobs)
def test_eap_packet(data: bytes) -> None:
    try:
        e = EapPacket.parse(data)
    except EapError:
        return
    assert e.to_bytes() == bytes(data)
    for fn in (parse_identity, parse_nak, parse_expanded, peap_common.microsoft_extension):
        try:
            fn(e)
        except EapError:
            pass


@FUZZ
@given(st.lists(blobs, min_size=1, max_size=8))
def test_tls_framing(fragments: list[bytes]) -> None:
    r = tls_framing.Reassembler(4096)
    for data in fragments:
        try:
            payload = tls_framing.parse_payload(data)
            r.add(payload)
        except tls_framing.EapTlsError:
            return
        assert len(r._buffer) <= 4096  # the cap holds whatever the lengths announce


@FUZZ
@given(blobs, st.sampled_from([EapCode.REQUEST, EapCode.RESPONSE]), st.integers(0, 255))
def test_peap_decompress_and_tlvs(data: bytes, code: EapCode, ident: int) -> None:
    try:
        inner = peap_common.decompress(data, code, ident)
    except EapError:
        inner = None
    if inner is not None and inner.type == EapType.TLV:
        try:
            peap_common.read_tlvs(inner.data)
        except EapError:
            pass
    try:
        peap_common.read_tlvs(data)
    except EapError:
        pass


@FUZZ
@given(blobs)
def test_mschapv2_parsers(data: bytes) -> None:
    for fn in (mschapv2.parse_request, mschapv2.parse_response):
        try:
            fn(data)
        except mschapv2.MschapV2Error:
            pass


@FUZZ
@given(st.one_of(blobs, st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=70)), max_size=4).map(
    lambda ts: b"".join(struct.pack("!HH", t, len(v)) + v for t, v in ts))))
def test_cryptobinding_tlvs(data: bytes) -> None:
    try:
        tlvs = cb.parse_tlvs(data)
    except cb.TlvError:
        return
    for tlv in tlvs:
        for fn in (cb.parse_result, cb.parse_cryptobinding):
            try:
                fn(tlv)
            except (cb.TlvError, cb.CryptobindingError):
                pass


def test_fuzz_recorded(robust: Any) -> None:
    """One summary line per decoder (the properties above are plain functions under @given)."""
    for name in ("parse_packet", "verify_reply", "round_receive", "salted_hidden", "dictionary_decode",
                 "eap_packet", "tls_framing", "peap_decompress_tlvs", "mschapv2", "cryptobinding_tlvs",
                 "peer_receive", "server_handle"):
        _record(name, robust)


pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
