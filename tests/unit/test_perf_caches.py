"""What an authentication no longer pays for (issue 14), as behaviour, never as time.

* Credentials are keyed on the file's identity from one ``stat`` (device, inode, size,
  mtime): no path resolution on every authentication, and a file reached by another path
  (relative, through a symlink) is the same entry.
* The server chain is validated and summarised once per distinct chain
  (:class:`probe.credentials.CertificateCache`), with the same report as computing it
  every time, and summaries handed out as copies.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from probe import credentials as cr
from probe.eap.packet import EapType
from probe.eap.peer import EapPeer, PeerConfig
from probe.emulator.eap_server import EapServerPolicy, EapServerSession, ServerTls
from probe.pki import Pki

PASSWORD = "Lab-Password-1"
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def fresh_caches() -> None:
    cr.clear_caches()


def test_a_cached_load_resolves_no_path(lab_pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = lab_pki.users["alice"]
    first = cr.load_client_credentials(alice.cert, alice.key)
    trust = cr.load_trust(lab_pki.ca)

    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("Path.resolve on a cached load")

    monkeypatch.setattr(Path, "resolve", forbidden)
    monkeypatch.setattr(os.path, "realpath", forbidden)
    assert cr.load_client_credentials(alice.cert, alice.key) is first
    assert cr.load_trust(lab_pki.ca) is trust
    assert (cr._CREDENTIALS.hits, cr._TRUST.hits) == (1, 1)


def test_the_same_file_by_another_path_is_the_same_entry(lab_pki: Pki, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    alice = lab_pki.users["alice"]
    first = cr.load_client_credentials(alice.cert, alice.key)
    (tmp_path / "cert.pem").symlink_to(alice.cert)
    monkeypatch.chdir(Path(alice.key).parent)
    assert cr.load_client_credentials(tmp_path / "cert.pem", Path(alice.key).name) is first


def test_a_swapped_symlink_is_loaded_again(lab_pki: Pki, tmp_path: Path) -> None:
    """A secret mount that swaps a symlink to the new files (Kubernetes' ..data) is a new entry."""
    link = tmp_path / "ca.pem"
    link.symlink_to(lab_pki.ca)
    first = cr.load_trust(link)
    link.unlink()
    link.symlink_to(lab_pki.untrusted_ca)
    assert cr.load_trust(link).certs != first.certs


def _converse(lab: Pki, outer: EapType, inner: EapType | None, facts: cr.CertificateCache | None) -> EapPeer:
    """One whole in-memory conversation against the emulator's EAP server; the finished peer."""
    alice = lab.users["alice"]
    policy = EapServerPolicy(server_cert=lab.server_chain, server_key=lab.server_key, ca_file=lab.ca)
    peer = EapPeer(PeerConfig(outer=outer, inner=inner, identity="alice", password=PASSWORD.encode(),
                              credentials=cr.load_client_credentials(alice.cert, alice.key),
                              trust=cr.load_trust(lab.ca), server_name="nps.lab.test", tls_max="1.2",
                              facts=facts))
    server = EapServerSession(policy, {"alice": PASSWORD}.get, tls=ServerTls(policy))
    step = server.handle(peer.start())
    for _ in range(60):
        answer = peer.receive(step.eap)
        if answer.reply is None:
            break
        step = server.handle(answer.reply)
    assert peer.state == "success"
    return peer


@pytest.mark.parametrize(("outer", "inner"), [(EapType.TLS, None), (EapType.PEAP, EapType.MSCHAPV2),
                                              (EapType.PEAP, EapType.TLS)])
def test_the_chain_is_validated_and_summarised_once(lab_pki: Pki, outer: EapType, inner: EapType | None) -> None:
    cache = cr.CertificateCache()
    reports = [_converse(lab_pki, outer, inner, cache).tls_report(now=NOW) for _ in range(3)]
    plain = _converse(lab_pki, outer, inner, None).tls_report(now=NOW)
    legs = 2 if inner == EapType.TLS else 1  # PEAP-TLS: the outer and the inner TLS see the same chain
    assert (cache._validations.misses, cache._validations.hits) == (1, 3 * legs - 1)
    assert (cache._summaries.misses, cache._summaries.hits) == (1, 3 * legs - 1)
    assert reports[0] == reports[1] == reports[2] == plain  # the same report as computing it each time
    assert plain["chain"] and plain["validation"] == "ok"


def test_summaries_are_copies(lab_pki: Pki) -> None:
    cache = cr.CertificateCache()
    first = _converse(lab_pki, EapType.TLS, None, cache).tls_report(now=NOW)
    server_cert, chain, client = first["server_cert"], first["chain"], first["client_cert"]
    assert isinstance(server_cert, dict) and isinstance(chain, list) and isinstance(client, dict)
    server_cert["subject"] = "edited"
    names = server_cert["san_dns"]
    assert isinstance(names, list)
    names.append("edited")
    chain[0]["sha256"] = "edited"
    client["subject"] = "edited"
    again = _converse(lab_pki, EapType.TLS, None, cache).tls_report(now=NOW)
    assert again == _converse(lab_pki, EapType.TLS, None, None).tls_report(now=NOW)


def test_days_left_follows_the_clock_through_the_cache(lab_pki: Pki) -> None:
    cache = cr.CertificateCache()
    peer = _converse(lab_pki, EapType.TLS, None, cache)
    today = peer.tls_report(now=NOW)["client_cert"]
    later = peer.tls_report(now=NOW.replace(year=NOW.year + 1))["client_cert"]
    assert isinstance(today, dict) and isinstance(later, dict)
    assert isinstance(today["days_left"], int) and isinstance(later["days_left"], int)
    assert today["days_left"] - later["days_left"] == 365


def test_tls_contexts_give_back_record_buffers_between_flights(lab_pki: Pki) -> None:
    """A held EAP-TLS conversation waits a round trip (or an MFA push) between flights: OpenSSL's
    ~17 KB read and write buffers are released while idle (SSL_MODE_RELEASE_BUFFERS), both roles."""
    from OpenSSL import SSL

    from probe.eap.tls_engine import client_context, server_context

    alice = lab_pki.users["alice"]
    creds, trust = cr.load_client_credentials(alice.cert, alice.key), cr.load_trust(lab_pki.ca)
    server_creds = cr.load_client_credentials(lab_pki.server_chain, lab_pki.server_key)
    for ctx in (client_context(credentials=creds, trust=trust),
                server_context(credentials=server_creds, trust=trust)):
        assert ctx.set_mode(0) & SSL.MODE_RELEASE_BUFFERS  # set_mode(0) returns the mode as it is


def _without_correlation(attrs: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    from probe.radius import packet as pk
    from probe.radius.dictionary import default_dictionary

    code = default_dictionary().get("MS-RAS-Correlation-ID").code
    head = pk.vsa(311, code, b"")[1][:5]  # the Microsoft VSA (vendor 311) of that type
    return [a for a in attrs if not (a[0] == pk.VENDOR_SPECIFIC and a[1][:5] == head)]


@pytest.mark.parametrize("extra", [[], [("NAS-Port", "7"), ("Filter-Id", "vpn")],
                                   [("MS-RAS-Correlation-ID", "{fixed}")]])
def test_nas_attributes_are_encoded_once_per_check_but_the_guid(extra: list[tuple[str, str]]) -> None:
    from probe.radius import profiles
    from probe.radius.dictionary import default_dictionary

    dictionary = default_dictionary()
    ctx = profiles.NasContext(nas_ip="127.0.0.1", framed_mtu=1400)
    profiles._ENCODED.clear()
    first, second = (profiles.nas_attributes("rras", ctx, extra, dictionary) for _ in range(2))
    assert len(profiles._ENCODED) == 1
    fresh = profiles.encode_pairs(
        [(n, v) for n, v in profiles.profile_pairs("rras", ctx)
         if dictionary.get(n).name not in {dictionary.get(e).name for e, _ in extra}] + extra, dictionary)
    assert len(first) == len(second) == len(fresh)
    assert _without_correlation(first) == _without_correlation(second) == _without_correlation(fresh)
    if extra and extra[0][0] == "MS-RAS-Correlation-ID":
        assert first == second  # the user's own value, not ours
    else:
        assert first != second  # a new RRAS correlation GUID for every conversation
    first.append((1, b"x"))  # a caller's edit never reaches the next conversation
    assert profiles.nas_attributes("rras", ctx, extra, dictionary)[-1] != (1, b"x")


def test_the_rras_correlation_id_is_a_braced_upper_case_uuid4() -> None:
    import re
    import uuid

    from probe.radius.profiles import _correlation_id

    ids = {_correlation_id() for _ in range(200)}
    assert len(ids) == 200
    for text in ids:
        assert re.fullmatch(r"\{[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}\}", text), text
        parsed = uuid.UUID(text.strip("{}"))
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert "{" + str(parsed).upper() + "}" == text


def test_the_fast_xor_and_attribute_encoder_give_the_bytes_of_the_plain_ones() -> None:
    import os

    from probe.radius import packet as pk

    for n, m in ((16, 16), (5, 16), (16, 3), (0, 16), (32, 32)):
        a, b = os.urandom(n), os.urandom(m)
        assert pk._xor(a, b) == bytes(x ^ y for x, y in zip(a, b))
    attrs = [(i % 255 + 1, os.urandom(i % 253 + 1)) for i in range(300)]
    assert pk.encode_attributes(attrs) == b"".join(bytes((t, len(v) + 2)) + v for t, v in attrs)
    with pytest.raises(ValueError, match="outside 1..255"):
        pk.encode_attributes([(0, b"x")])
