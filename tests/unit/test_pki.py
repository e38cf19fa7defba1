"""The lab PKI: every certificate is checked with cryptography, OpenSSL's CLI and a real TLS handshake."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st
from OpenSSL import SSL

from probe import pki as pkimod
from probe.pki import (
    CLIENT_AUTH,
    SERVER_AUTH,
    UPN_OID,
    Pki,
    has_eku,
    init_pki,
    issue_certificate,
    upn_from_certificate,
)

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
P12_PASSWORD = "lab-p12-Pa55"
KEY_PASSPHRASE = "lab-key-Pa55"
GOOD_USERS = ("alice", "ecdsa-user")
TRUSTED_USERS = ("alice", "ecdsa-user", "expired", "noeku")
OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A PKI pinned to NOW, so validity assertions do not depend on the clock."""
    return init_pki(
        tmp_path_factory.mktemp("pki") / "lab",
        now=NOW, p12_password=P12_PASSWORD, key_passphrase=KEY_PASSPHRASE,
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A PKI made the way `radius-probe certs init` makes it (current time, random password)."""
    return init_pki(tmp_path_factory.mktemp("live"))


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def load_key(path: Path, password: bytes | None = None) -> object:
    return serialization.load_pem_private_key(path.read_bytes(), password=password)


def public_der(obj: object) -> bytes:
    return obj.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Check the signature alone (no name matching), to show which CA's key really signed."""
    key = issuer.public_key()
    algorithm = cert.signature_hash_algorithm
    assert algorithm is not None
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)
        else:
            assert isinstance(key, ec.EllipticCurvePublicKey)
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
    except InvalidSignature:
        return False
    return True


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, *args], capture_output=True, text=True, timeout=30, check=False)


def attime(moment: datetime) -> str:
    return str(int(moment.timestamp()))


# --- CAs -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("attr", "name"), [("ca", "radius-probe Lab Root CA"),
                                             ("untrusted_ca", "radius-probe Untrusted CA")])
def test_ca_is_a_self_signed_rsa_ca_valid_ten_years(lab: Pki, attr: str, name: str) -> None:
    ca = load(getattr(lab, attr))
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
    assert ca.issuer == ca.subject
    ca.verify_directly_issued_by(ca)
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = ca.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    key = ca.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    assert ca.not_valid_after_utc == NOW + timedelta(days=3650)
    assert ca.not_valid_before_utc < NOW - timedelta(days=365)


def test_the_two_cas_are_different_keys(lab: Pki) -> None:
    assert public_der(load(lab.ca)) != public_der(load(lab.untrusted_ca))
    assert signed_by(load(lab.untrusted_ca), load(lab.untrusted_ca))
    assert not signed_by(load(lab.untrusted_ca), load(lab.ca))


# --- server certificates --------------------------------------------------------------------------

def test_server_certificate(lab: Pki) -> None:
    server = load(lab.server_cert)
    server.verify_directly_issued_by(load(lab.ca))
    assert server.subject.rfc4514_string() == "CN=nps.lab.test"
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["nps.lab.test"]
    assert has_eku(server, SERVER_AUTH) and not has_eku(server, CLIENT_AUTH)
    usage = server.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment and not usage.key_cert_sign
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert upn_from_certificate(server) is None
    assert server.not_valid_after_utc == NOW + timedelta(days=730)
    assert server.not_valid_before_utc <= NOW


def test_server_certificate_passes_path_validation_for_its_name(lab: Pki) -> None:
    verifier = (verification.PolicyBuilder().store(verification.Store([load(lab.ca)]))
                .time(NOW).build_server_verifier(x509.DNSName("nps.lab.test")))
    chain = verifier.verify(load(lab.server_cert), [])
    assert chain[-1] == load(lab.ca)
    other_name = (verification.PolicyBuilder().store(verification.Store([load(lab.ca)]))
                  .time(NOW).build_server_verifier(x509.DNSName("other.lab.test")))
    with pytest.raises(verification.VerificationError):
        other_name.verify(load(lab.server_cert), [])


def test_server_chain_is_server_then_ca(lab: Pki) -> None:
    chain = x509.load_pem_x509_certificates(lab.server_chain.read_bytes())
    assert chain == [load(lab.server_cert), load(lab.ca)]


def test_untrusted_server_certificate_chains_only_to_the_untrusted_ca(lab: Pki) -> None:
    cert = load(lab.untrusted_server_cert)
    cert.verify_directly_issued_by(load(lab.untrusted_ca))
    assert not signed_by(cert, load(lab.ca))
    assert cert.subject.rfc4514_string() == "CN=nps.lab.test"
    assert has_eku(cert, SERVER_AUTH)
    assert public_der(cert) == public_der(load_key(lab.untrusted_server_key))


def test_extra_server_names_go_into_the_san(tmp_path: Path) -> None:
    made = init_pki(tmp_path, server_names=("nps.lab.test", "nps2.lab.test", "radius.corp.test"), now=NOW)
    server = load(made.server_cert)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["nps.lab.test", "nps2.lab.test", "radius.corp.test"]
    assert server.subject.rfc4514_string() == "CN=nps.lab.test"
    assert load(made.untrusted_server_cert).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)[1] == "nps2.lab.test"


# --- users ----------------------------------------------------------------------------------------

def test_users_are_the_five_lab_users(lab: Pki) -> None:
    assert list(lab.users) == ["alice", "ecdsa-user", "expired", "noeku", "untrusted"]
    for name, user in lab.users.items():
        assert user.upn == f"{name}@lab.test"
        assert user.cert.name == f"{name}.pem" and user.key.name == f"{name}.key"
        assert user.p12.name == f"{name}.p12"


@pytest.mark.parametrize("name", ["alice", "ecdsa-user", "expired", "noeku", "untrusted"])
def test_user_certificate_basics(lab: Pki, name: str) -> None:
    user = lab.users[name]
    cert = load(user.cert)
    assert cert.subject.rfc4514_string() == f"CN={name}"
    assert upn_from_certificate(cert) == f"{name}@lab.test"
    assert public_der(cert) == public_der(load_key(user.key))
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    issuer = load(lab.untrusted_ca if name == "untrusted" else lab.ca)
    other = load(lab.ca if name == "untrusted" else lab.untrusted_ca)
    cert.verify_directly_issued_by(issuer)
    assert signed_by(cert, issuer) and not signed_by(cert, other)
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == issuer.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier).value.digest


def test_key_types(lab: Pki) -> None:
    alice = load(lab.users["alice"].cert).public_key()
    ecdsa = load(lab.users["ecdsa-user"].cert).public_key()
    assert isinstance(alice, rsa.RSAPublicKey) and alice.key_size == 2048
    assert isinstance(ecdsa, ec.EllipticCurvePublicKey) and isinstance(ecdsa.curve, ec.SECP256R1)
    assert lab.users["alice"].key_type == "rsa" and lab.users["ecdsa-user"].key_type == "ecdsa"
    assert isinstance(load(lab.users["ecdsa-user"].cert).signature_hash_algorithm, hashes.SHA256)


@pytest.mark.parametrize(("name", "client_auth"), [("alice", True), ("ecdsa-user", True),
                                                   ("expired", True), ("noeku", False),
                                                   ("untrusted", True)])
def test_client_auth_eku(lab: Pki, name: str, client_auth: bool) -> None:
    cert = load(lab.users[name].cert)
    assert has_eku(cert, CLIENT_AUTH) is client_auth
    assert not has_eku(cert, SERVER_AUTH)


def test_valid_users_pass_client_path_validation(lab: Pki) -> None:
    verifier = (verification.PolicyBuilder().store(verification.Store([load(lab.ca)]))
                .time(NOW).build_client_verifier())
    for name in GOOD_USERS:
        verified = verifier.verify(load(lab.users[name].cert), [])
        assert verified.chain[-1] == load(lab.ca)


@pytest.mark.parametrize("name", ["expired", "noeku", "untrusted"])
def test_bad_users_fail_client_path_validation(lab: Pki, name: str) -> None:
    verifier = (verification.PolicyBuilder().store(verification.Store([load(lab.ca)]))
                .time(NOW).build_client_verifier())
    with pytest.raises(verification.VerificationError):
        verifier.verify(load(lab.users[name].cert), [])


def test_expired_user_ended_yesterday_and_started_a_year_ago(lab: Pki) -> None:
    cert = load(lab.users["expired"].cert)
    assert cert.not_valid_after_utc == NOW - timedelta(days=1)
    assert cert.not_valid_before_utc == NOW - timedelta(days=365)
    assert cert.not_valid_after_utc < NOW
    assert load(lab.ca).not_valid_before_utc < cert.not_valid_before_utc


def test_good_users_are_valid_now_for_the_leaf_period(lab: Pki) -> None:
    for name in GOOD_USERS:
        cert = load(lab.users[name].cert)
        assert cert.not_valid_before_utc <= NOW < cert.not_valid_after_utc
        assert cert.not_valid_after_utc == NOW + timedelta(days=730)


def test_leaf_validity_is_configurable(tmp_path: Path) -> None:
    made = init_pki(tmp_path, now=NOW, leaf_validity=timedelta(days=30))
    assert load(made.server_cert).not_valid_after_utc == NOW + timedelta(days=30)
    assert load(made.users["alice"].cert).not_valid_after_utc == NOW + timedelta(days=30)
    assert load(made.ca).not_valid_after_utc == NOW + timedelta(days=3650)


def test_serial_numbers_are_random_and_distinct(lab: Pki, live: Pki) -> None:
    paths = [lab.ca, lab.server_cert, lab.untrusted_ca, lab.untrusted_server_cert,
             *(u.cert for u in lab.users.values()), live.ca, live.server_cert]
    serials = [load(p).serial_number for p in paths]
    assert len(set(serials)) == len(serials)
    assert all(s > 0 and s.bit_length() > 64 for s in serials)


# --- UPN encoding -----------------------------------------------------------------------------------

def test_upn_is_a_der_utf8string_inside_the_other_name(lab: Pki) -> None:
    san = load(lab.users["alice"].cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    (other,) = san.value.get_values_for_type(x509.OtherName)
    assert other.type_id == UPN_OID
    assert other.value == b"\x0c\x0e" + b"alice@lab.test"


@needs_openssl
def test_openssl_reads_the_upn(lab: Pki) -> None:
    text = openssl("x509", "-in", str(lab.users["alice"].cert), "-noout", "-ext", "subjectAltName").stdout
    assert "UPN" in text and "alice@lab.test" in text


def upn_cert(value: bytes) -> x509.Certificate:
    """A certificate whose UPN otherName carries raw bytes, to feed the parser malformed input."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "raw")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(NOW).not_valid_after(NOW + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.OtherName(UPN_OID, value)]), critical=False)
            .sign(key, hashes.SHA256()))


def test_long_upn_uses_the_long_form_der_length() -> None:
    upn = "u" * 191 + "@lab.test"  # 200 bytes
    made = issue_certificate("long", key_type="ecdsa", upn=upn, not_before=NOW,
                             not_after=NOW + timedelta(days=1))
    other = made.cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.OtherName)[0]
    assert other.value[:3] == b"\x0c\x81\xc8"
    assert upn_from_certificate(made.cert) == upn


@settings(max_examples=40, deadline=None)
@given(st.text(min_size=1, max_size=300))
def test_upn_round_trips_any_text(upn: str) -> None:
    encoded = pkimod._encode_der_utf8string(upn)
    assert pkimod._decode_der_utf8string(encoded) == upn
    assert upn_from_certificate(upn_cert(encoded)) == upn


@pytest.mark.parametrize("value", [
    b"\x16\x0ealice@lab.test",          # IA5String, not UTF8String
    b"\x0c\x02\xff\xfe",                # not UTF-8
])
def test_wrongly_typed_upn_is_rejected(value: bytes) -> None:
    with pytest.raises(ValueError, match="UPN"):
        upn_from_certificate(upn_cert(value))


@pytest.mark.parametrize("value", [
    b"\x0c\x0falice@lab.test",          # length past the end
    b"\x0c\x0ealice@lab.testX",         # trailing byte
    b"\x0c\x81\x05alice",               # non-minimal long form
    b"\x0c\x80",                         # indefinite length
    b"\x0c",                            # truncated
])
def test_malformed_der_is_rejected_by_the_decoder(value: bytes) -> None:
    # cryptography itself refuses to build or parse these, so the decoder is fed directly.
    with pytest.raises(ValueError, match="UPN"):
        pkimod._decode_der_utf8string(value)


def test_certificate_without_san_has_no_upn() -> None:
    made = issue_certificate("bare", key_type="ecdsa", not_before=NOW, not_after=NOW + timedelta(days=1))
    assert upn_from_certificate(made.cert) is None
    assert not has_eku(made.cert, CLIENT_AUTH)


# --- files: PKCS#12, key files, permissions, overwrite ---------------------------------------------

@pytest.mark.parametrize("name", ["alice", "ecdsa-user", "untrusted"])
def test_pkcs12_loads_with_the_password(lab: Pki, name: str) -> None:
    user = lab.users[name]
    assert lab.p12_password_file.read_text() == P12_PASSWORD
    key, cert, extra = pkcs12.load_key_and_certificates(user.p12.read_bytes(), P12_PASSWORD.encode())
    assert cert == load(user.cert)
    assert public_der(key) == public_der(cert)
    assert extra == [load(lab.untrusted_ca if name == "untrusted" else lab.ca)]


def test_pkcs12_refuses_a_wrong_password(lab: Pki) -> None:
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(lab.users["alice"].p12.read_bytes(), b"wrong")


@needs_openssl
def test_openssl_reads_the_pkcs12_with_the_password_file(lab: Pki) -> None:
    p12 = str(lab.users["alice"].p12)
    good = openssl("pkcs12", "-in", p12, "-passin", f"file:{lab.p12_password_file}", "-nokeys")
    assert good.returncode == 0 and "BEGIN CERTIFICATE" in good.stdout
    bad = openssl("pkcs12", "-in", p12, "-passin", "pass:wrong", "-nokeys")
    assert bad.returncode != 0


def test_random_p12_password_is_only_in_its_file(live: Pki) -> None:
    password = live.p12_password_file.read_text()
    assert len(password) >= 16
    pkcs12.load_key_and_certificates(live.users["alice"].p12.read_bytes(), password.encode())
    assert password not in live.manifest.read_text()
    assert password not in live.summary() and password not in repr(live)


def test_private_keys_are_unencrypted_pkcs8(lab: Pki) -> None:
    for path in [lab.ca_key, lab.server_key, lab.untrusted_server_key,
                 *(u.key for u in lab.users.values())]:
        assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
        load_key(path)


def test_encrypted_key_needs_its_passphrase(lab: Pki) -> None:
    user = lab.users["alice"]
    assert user.encrypted_key is not None
    assert user.encrypted_key.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    key = load_key(user.encrypted_key, KEY_PASSPHRASE.encode())
    assert public_der(key) == public_der(load(user.cert))
    with pytest.raises((ValueError, TypeError)):
        load_key(user.encrypted_key, b"wrong")
    with pytest.raises(TypeError):
        load_key(user.encrypted_key)


@needs_openssl
def test_openssl_rejects_a_wrong_key_passphrase(lab: Pki) -> None:
    path = str(lab.users["ecdsa-user"].encrypted_key)
    assert openssl("pkey", "-in", path, "-passin", f"pass:{KEY_PASSPHRASE}", "-noout").returncode == 0
    assert openssl("pkey", "-in", path, "-passin", "pass:wrong", "-noout").returncode != 0


def test_no_encrypted_keys_without_a_passphrase(live: Pki) -> None:
    assert all(u.encrypted_key is None for u in live.users.values())
    assert not list(live.directory.glob("*-encrypted.key"))


def test_secret_files_are_mode_0600(lab: Pki) -> None:
    secret = [lab.ca_key, lab.server_key, lab.untrusted_ca_key, lab.untrusted_server_key,
              lab.p12_password_file]
    for user in lab.users.values():
        secret += [user.key, user.p12]
        assert user.encrypted_key is not None
        secret.append(user.encrypted_key)
    for path in secret:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for path in [lab.ca, lab.server_cert, lab.server_chain, lab.manifest]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_refuses_to_overwrite_and_leaves_files_untouched(tmp_path: Path) -> None:
    made = init_pki(tmp_path / "d", now=NOW)
    before = {p.name: p.read_bytes() for p in made.directory.iterdir()}
    with pytest.raises(FileExistsError) as refused:
        init_pki(tmp_path / "d", now=NOW)
    assert str(made.ca) in str(refused.value)
    assert {p.name: p.read_bytes() for p in made.directory.iterdir()} == before


def test_refuses_when_any_single_file_exists(tmp_path: Path) -> None:
    tmp_path.joinpath("manifest.json").write_text("mine")
    with pytest.raises(FileExistsError, match="manifest.json"):
        init_pki(tmp_path, now=NOW)
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_overwrite_replaces_everything_and_fixes_modes(tmp_path: Path) -> None:
    made = init_pki(tmp_path, now=NOW)
    old_ca = made.ca.read_bytes()
    made.ca_key.chmod(0o644)
    again = init_pki(tmp_path, now=NOW, overwrite=True)
    assert again.ca.read_bytes() != old_ca
    assert stat.S_IMODE(again.ca_key.stat().st_mode) == 0o600
    load(again.server_cert).verify_directly_issued_by(load(again.ca))


# --- manifest and summary ---------------------------------------------------------------------------

def test_manifest_describes_every_certificate(lab: Pki) -> None:
    manifest = json.loads(lab.manifest.read_text())
    assert manifest["lab_only"] is True and manifest["p12_password_file"] == "p12-password.txt"
    assert P12_PASSWORD not in lab.manifest.read_text() and KEY_PASSPHRASE not in lab.manifest.read_text()
    entries = {e["cert"]: e for e in manifest["files"]}
    assert set(entries) == {"ca.pem", "untrusted-ca.pem", "server.pem", "untrusted-server.pem",
                            *(f"{n}.pem" for n in lab.users)}
    for cert_name, entry in entries.items():
        cert = load(lab.directory / cert_name)
        assert entry["sha256"] == cert.fingerprint(hashes.SHA256()).hex()
        assert entry["subject"] == cert.subject.rfc4514_string()
        assert entry["not_after"] == cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert (lab.directory / entry["key"]).exists()
    assert entries["alice.pem"]["upn"] == "alice@lab.test"
    assert entries["alice.pem"]["p12"] == "alice.p12"
    assert entries["ecdsa-user.pem"]["key_type"] == "ecdsa"
    assert entries["server.pem"]["chain"] == "server-chain.pem"
    assert entries["server.pem"]["dns_names"] == ["nps.lab.test"]
    assert entries["expired.pem"]["not_after"] == "2025-05-31T12:00:00Z"
    assert ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string not in entries["noeku.pem"]["ekus"]


def test_summary_names_the_files_and_the_password_file_only(lab: Pki) -> None:
    text = lab.summary()
    assert str(lab.directory) in text
    for name in ["ca.pem", "server.pem", "server-chain.pem", "untrusted-ca.pem", "untrusted-server.pem",
                 "alice.p12", "ecdsa-user.p12", "expired.pem", "noeku.pem", "untrusted.pem",
                 "p12-password.txt", "manifest.json", "alice-encrypted.key"]:
        assert name in text
    assert P12_PASSWORD not in text and KEY_PASSPHRASE not in text


# --- issue_certificate and argument checks ---------------------------------------------------------

def test_issue_certificate_makes_a_one_off_chain() -> None:
    window = {"not_before": NOW, "not_after": NOW + timedelta(days=10)}
    root = issue_certificate("Test CA", key_type="ecdsa", is_ca=True, **window)
    leaf = issue_certificate("bob", issuer_cert=root.cert, issuer_key=root.key, key_type="ecdsa",
                             ekus=(CLIENT_AUTH, SERVER_AUTH), dns_names=("bob.test",),
                             upn="bob@corp.test", **window)
    leaf.cert.verify_directly_issued_by(root.cert)
    assert leaf.cert.issuer == root.cert.subject
    assert has_eku(leaf.cert, CLIENT_AUTH) and has_eku(leaf.cert, SERVER_AUTH)
    assert upn_from_certificate(leaf.cert) == "bob@corp.test"
    usage = leaf.cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_encipherment


@pytest.mark.parametrize("kwargs", [
    {"not_before": NOW.replace(tzinfo=None), "not_after": NOW + timedelta(days=1)},
    {"not_before": NOW, "not_after": NOW},
    {"not_before": NOW, "not_after": NOW + timedelta(days=1), "key_type": "dsa"},
])
def test_issue_certificate_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        issue_certificate("x", **kwargs)  # type: ignore[arg-type]


def test_issuer_cert_and_key_go_together() -> None:
    root = issue_certificate("CA", key_type="ecdsa", is_ca=True, not_before=NOW,
                             not_after=NOW + timedelta(days=1))
    with pytest.raises(ValueError, match="both or neither"):
        issue_certificate("x", issuer_cert=root.cert, not_before=NOW, not_after=NOW + timedelta(days=1))


@pytest.mark.parametrize("kwargs", [{"server_names": ()}, {"now": NOW.replace(tzinfo=None)},
                                    {"p12_password": ""}, {"key_passphrase": ""},
                                    {"leaf_validity": timedelta(minutes=5)}])
def test_init_pki_rejects_bad_arguments_before_writing(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        init_pki(tmp_path / "out", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


# --- OpenSSL: the CLI and a real TLS handshake --------------------------------------------------------

@needs_openssl
def test_openssl_verify_server_and_clients(lab: Pki) -> None:
    at = ["-attime", attime(NOW)]
    ca, untrusted_ca = str(lab.ca), str(lab.untrusted_ca)
    assert openssl("verify", *at, "-CAfile", ca, str(lab.server_cert)).returncode == 0
    as_server = openssl("verify", *at, "-CAfile", ca, "-purpose", "sslserver", str(lab.server_cert))
    assert as_server.returncode == 0
    untrusted = openssl("verify", *at, "-CAfile", ca, str(lab.untrusted_server_cert))
    assert untrusted.returncode != 0 and "unable to get local issuer" in untrusted.stdout + untrusted.stderr
    assert openssl("verify", *at, "-CAfile", untrusted_ca, str(lab.untrusted_server_cert)).returncode == 0
    for name in GOOD_USERS:
        assert openssl("verify", *at, "-CAfile", ca, "-purpose", "sslclient",
                       str(lab.users[name].cert)).returncode == 0
    expired = openssl("verify", *at, "-CAfile", ca, str(lab.users["expired"].cert))
    assert expired.returncode != 0 and "expired" in expired.stdout + expired.stderr
    noeku = openssl("verify", *at, "-CAfile", ca, "-purpose", "sslclient", str(lab.users["noeku"].cert))
    assert noeku.returncode != 0 and "unsuitable certificate purpose" in noeku.stdout + noeku.stderr
    assert openssl("verify", *at, "-CAfile", ca, str(lab.users["untrusted"].cert)).returncode != 0


@needs_openssl
def test_openssl_verify_a_pki_made_with_the_current_time(live: Pki) -> None:
    assert openssl("verify", "-CAfile", str(live.ca), str(live.server_cert)).returncode == 0
    assert openssl("verify", "-CAfile", str(live.ca), str(live.untrusted_server_cert)).returncode != 0
    assert openssl("verify", "-CAfile", str(live.ca), str(live.users["expired"].cert)).returncode != 0


def handshake(live: Pki, client_cert: Path, client_key: Path, client_ca: Path) -> str:
    """Run a mutually authenticated TLS 1.2 handshake in memory; return 'ok' or the failing side."""
    server_ctx = SSL.Context(SSL.TLS_METHOD)
    server_ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
    server_ctx.use_certificate_chain_file(str(live.server_chain))
    server_ctx.use_privatekey_file(str(live.server_key))
    server_ctx.load_verify_locations(str(live.ca))
    server_ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT)
    client_ctx = SSL.Context(SSL.TLS_METHOD)
    client_ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
    client_ctx.use_certificate_file(str(client_cert))
    client_ctx.use_privatekey_file(str(client_key))
    client_ctx.load_verify_locations(str(client_ca))
    client_ctx.set_verify(SSL.VERIFY_PEER)
    client, server = SSL.Connection(client_ctx, None), SSL.Connection(server_ctx, None)
    client.set_connect_state()
    server.set_accept_state()
    done = {"client": False, "server": False}
    for _ in range(20):
        for side, conn, peer in (("client", client, server), ("server", server, client)):
            if not done[side]:
                try:
                    conn.do_handshake()
                    done[side] = True
                except SSL.WantReadError:
                    pass
                except SSL.Error:
                    return f"{side} failed"
            try:
                peer.bio_write(conn.bio_read(65536))
            except SSL.WantReadError:
                pass
        if all(done.values()):
            return "ok"
    return "stalled"


def test_tls_handshake_accepts_alice_and_ecdsa_user(live: Pki) -> None:
    for name in GOOD_USERS:
        user = live.users[name]
        assert handshake(live, user.cert, user.key, live.ca) == "ok"


@pytest.mark.parametrize("name", ["expired", "noeku", "untrusted"])
def test_tls_handshake_rejects_bad_client_certificates(live: Pki, name: str) -> None:
    user = live.users[name]
    assert handshake(live, user.cert, user.key, live.ca) == "server failed"


def test_tls_handshake_client_rejects_a_server_it_does_not_trust(live: Pki) -> None:
    user = live.users["alice"]
    assert handshake(live, user.cert, user.key, live.untrusted_ca) == "client failed"
