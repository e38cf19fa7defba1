"""A throw-away lab PKI for radius-probe: CAs, an NPS server certificate and client certificates.

Everything here is for LABS AND TESTS ONLY. Private keys are written unencrypted
(PKCS#8 PEM, mode 0600) because FreeRADIUS, hostapd and eapol_test must read
them without a prompt, and the PKCS#12 password is stored next to the bundles
in ``p12-password.txt``. Never use this PKI to protect anything real.

The set of certificates mirrors what Microsoft NPS checks for EAP-TLS and
PEAP-TLS (see PROTOCOL-NOTES.md): a Client Authentication EKU, a chain to a
trusted CA and a SAN otherName UPN (1.3.6.1.4.1.311.20.2.3) that maps the
certificate to an account. Each user certificate exercises one of those
checks: ``alice`` and ``ecdsa-user`` pass all of them, ``expired``, ``noeku``
and ``untrusted`` each fail exactly one.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal, TypeAlias, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType: TypeAlias = Literal["rsa", "ecdsa"]
PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
_Ext = TypeVar("_Ext", bound=x509.ExtensionType)

UPN_OID = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
"""Microsoft szOID_NT_PRINCIPAL_NAME: the otherName NPS maps to an account."""

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH

CA_NAME = "radius-probe Lab Root CA"
UNTRUSTED_CA_NAME = "radius-probe Untrusted CA"
UPN_DOMAIN = "lab.test"
DEFAULT_SERVER_NAMES: tuple[str, ...] = ("nps.lab.test",)
DEFAULT_LEAF_VALIDITY = timedelta(days=730)
CA_VALIDITY = timedelta(days=3650)
# Start dates are set back a little so a peer whose clock runs behind ours
# does not see a certificate that is "not yet valid".
CLOCK_SKEW = timedelta(hours=1)
# The expired user's certificate started a year ago; its CA must be older.
EXPIRED_START = timedelta(days=365)
CA_BACKDATE = EXPIRED_START + timedelta(days=1)

_RSA_BITS = 2048
_UTF8STRING_TAG = 0x0C
_PRIVATE_MODE = 0o600
_PUBLIC_MODE = 0o644

P12_PASSWORD_FILE = "p12-password.txt"
MANIFEST_FILE = "manifest.json"

# User name -> (key type, Client Authentication EKU?, signed by the untrusted CA?,
# expired?, what it is for). Order is the order of the summary and manifest.
_USERS: dict[str, tuple[KeyType, bool, bool, bool, str]] = {
    "alice": ("rsa", True, False, False, "valid client certificate (RSA 2048)"),
    "ecdsa-user": ("ecdsa", True, False, False, "valid client certificate (ECDSA P-256)"),
    "expired": ("rsa", True, False, True, "expired client certificate (ended yesterday)"),
    "noeku": ("rsa", False, False, False, "client certificate without the Client Authentication EKU"),
    "untrusted": ("rsa", True, True, False, "client certificate from the untrusted CA"),
}
USER_NAMES: tuple[str, ...] = tuple(_USERS)


@dataclass(frozen=True)
class Issued:
    """A freshly issued certificate and the private key that belongs to it."""

    cert: x509.Certificate
    key: PrivateKey


@dataclass(frozen=True)
class UserCert:
    """Where one lab user's certificate, key and PKCS#12 bundle live."""

    cert: Path
    key: Path
    p12: Path
    upn: str
    key_type: KeyType
    encrypted_key: Path | None = None


@dataclass(frozen=True)
class Pki:
    """Paths of a lab PKI written by :func:`init_pki` (absolute paths)."""

    directory: Path
    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    server_chain: Path
    untrusted_ca: Path
    untrusted_ca_key: Path
    untrusted_server_cert: Path
    untrusted_server_key: Path
    users: dict[str, UserCert]
    p12_password_file: Path
    manifest: Path

    def summary(self) -> str:
        """A short listing for ``radius-probe certs init``: names the password file, not the password."""
        rows: list[tuple[str, str]] = [
            ("ca.pem, ca.key", f"{CA_NAME}: the trust anchor (--ca, NPS/FreeRADIUS ca_file)"),
            ("server.pem, server.key", "NPS server certificate (serverAuth, signed by the lab CA)"),
            ("server-chain.pem", "server certificate followed by the lab CA"),
            ("untrusted-ca.pem, untrusted-ca.key", f"{UNTRUSTED_CA_NAME}: a CA nobody trusts"),
            ("untrusted-server.pem, untrusted-server.key",
             "server certificate from the untrusted CA (validation must fail)"),
        ]
        for name, user in self.users.items():
            files = f"{name}.pem, {name}.key, {name}.p12"
            purpose = _USERS[name][4] if name in _USERS else "valid client certificate (RSA 2048)"
            rows.append((files, f"{purpose}, UPN {user.upn}"))
            if user.encrypted_key is not None:
                rows.append((user.encrypted_key.name, f"{name}'s key, encrypted with the passphrase"))
        rows.append((self.p12_password_file.name, "password of the .p12 bundles"))
        rows.append((self.manifest.name, "what each file is: subject, key type, UPN, expiry, SHA-256"))
        width = max(len(files) for files, _ in rows)
        lines = [f"Lab PKI in {self.directory} (for labs and tests only: keys are unencrypted)"]
        lines += [f"  {files.ljust(width)}  {purpose}" for files, purpose in rows]
        return "\n".join(lines)


def upn_from_certificate(cert: x509.Certificate) -> str | None:
    """Return the first SAN otherName UPN, or None when the certificate has none.

    Raises ValueError when a UPN otherName is present but is not a well-formed
    DER UTF8String, since a silently wrong account name would mislead a diagnosis.
    """
    san = _extension(cert, x509.SubjectAlternativeName)
    if san is None:
        return None
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == UPN_OID:
            return _decode_der_utf8string(other.value)
    return None


def has_eku(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> bool:
    """True when the certificate's Extended Key Usage lists ``oid``.

    A certificate without the extension returns False: NPS requires the purpose
    to be stated explicitly, unlike RFC 5280's "any purpose" reading.
    """
    usages = _extension(cert, x509.ExtendedKeyUsage)
    return usages is not None and oid in usages


def _extension(cert: x509.Certificate, kind: type[_Ext]) -> _Ext | None:
    """The value of an extension, or None when the certificate lacks it."""
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def generate_key(key_type: KeyType) -> PrivateKey:
    """A new RSA 2048 or ECDSA P-256 key, the two kinds NPS deployments use."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
    if key_type == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key type {key_type!r} (expected 'rsa' or 'ecdsa')")


def issue_certificate(
    common_name: str,
    *,
    not_before: datetime,
    not_after: datetime,
    issuer_cert: x509.Certificate | None = None,
    issuer_key: PrivateKey | None = None,
    key_type: KeyType = "rsa",
    is_ca: bool = False,
    ekus: Sequence[x509.ObjectIdentifier] = (),
    dns_names: Sequence[str] = (),
    upn: str | None = None,
) -> Issued:
    """Issue one certificate with a new key; self-signed when no issuer is given.

    General enough for one-off certificates in tests (a wrong EKU, a second CA,
    a name mismatch) while init_pki uses it for the whole lab PKI.
    """
    if (issuer_cert is None) != (issuer_key is None):
        raise ValueError("issuer_cert and issuer_key go together (both or neither)")
    if _require_aware(not_after) <= _require_aware(not_before):
        raise ValueError("not_after must be later than not_before")
    key = generate_key(key_type)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signing_key = issuer_key if issuer_key is not None else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(_key_usage(key_type, is_ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_id(issuer_cert, key), critical=False)
    )
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=False)
    alt_names = _subject_alt_names(dns_names, upn)
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return Issued(cert=builder.sign(signing_key, hashes.SHA256()), key=key)


def save_private_key(path: Path, key: PrivateKey, *, passphrase: str | None = None,
                     overwrite: bool = False) -> None:
    """Write a PKCS#8 PEM key with mode 0600, encrypted when a passphrase is given."""
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if passphrase is not None:
        encryption = serialization.BestAvailableEncryption(_secret_bytes(passphrase, "passphrase"))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    _write_file(path, pem, _PRIVATE_MODE, overwrite)


def init_pki(
    directory: Path,
    *,
    server_names: Sequence[str] = DEFAULT_SERVER_NAMES,
    overwrite: bool = False,
    now: datetime | None = None,
    p12_password: str | None = None,
    leaf_validity: timedelta = DEFAULT_LEAF_VALIDITY,
    key_passphrase: str | None = None,
    extra_users: Sequence[str] = (),
) -> Pki:
    """Create the lab PKI in ``directory`` (made if missing) and return its paths.

    Refuses (FileExistsError naming the file) to replace any existing file unless
    ``overwrite`` is true; the check runs before anything is written. ``now``
    (timezone-aware) pins every validity period so tests are deterministic. A
    random PKCS#12 password is made when none is given; it is stored only in
    ``p12-password.txt``. With ``key_passphrase``, every user also gets
    ``<name>-encrypted.key`` for bad-passphrase tests. ``extra_users`` adds a valid
    RSA client certificate (UPN ``<name>@lab.test``) for each name, e.g. the
    emulator's behaviour users, so certificate methods can reach every behaviour.
    """
    if not server_names:
        raise ValueError("server_names needs at least one DNS name")
    if leaf_validity <= CLOCK_SKEW:
        raise ValueError("leaf_validity must be longer than the clock-skew allowance of one hour")
    moment = _require_aware(now) if now is not None else datetime.now(timezone.utc)
    password = p12_password if p12_password is not None else secrets.token_urlsafe(18)
    _secret_bytes(password, "p12_password")
    if key_passphrase is not None:
        _secret_bytes(key_passphrase, "key_passphrase")
    users = _user_specs(extra_users)
    root = Path(directory).absolute()
    pki = _layout(root, key_passphrase is not None, users)
    _refuse_existing(_all_paths(pki), overwrite)
    root.mkdir(parents=True, exist_ok=True)

    writer = _Writer(root, overwrite, moment)
    ca = writer.ca(CA_NAME, "ca", "lab root CA (trust anchor)")
    untrusted_ca = writer.ca(UNTRUSTED_CA_NAME, "untrusted-ca", "untrusted CA")
    leaf_window = (moment - CLOCK_SKEW, moment + leaf_validity)
    writer.server(ca, "server", server_names, leaf_window, "NPS server certificate",
                  chain=pki.server_chain)
    writer.server(untrusted_ca, "untrusted-server", server_names, leaf_window,
                  "server certificate from the untrusted CA")
    expired_window = (moment - EXPIRED_START, moment - timedelta(days=1))
    for name, (key_type, client_auth, untrusted, expired, purpose) in users.items():
        writer.user(
            name, untrusted_ca if untrusted else ca, key_type, client_auth,
            expired_window if expired else leaf_window, purpose, password, key_passphrase,
        )
    _write_file(pki.p12_password_file, password.encode("utf-8"), _PRIVATE_MODE, overwrite)
    manifest = {
        "schema": 1,
        "lab_only": True,
        "warning": "radius-probe lab PKI for tests only: private keys are unencrypted and the "
                   "PKCS#12 password is stored in p12-password.txt.",
        "generated_at": _iso(moment),
        "p12_password_file": P12_PASSWORD_FILE,
        "files": writer.entries,
    }
    _write_file(pki.manifest, (json.dumps(manifest, indent=2) + "\n").encode(), _PUBLIC_MODE, overwrite)
    return pki


class _Writer:
    """Issues the lab certificates, writes their files and collects manifest entries."""

    def __init__(self, root: Path, overwrite: bool, now: datetime) -> None:
        self.root = root
        self.overwrite = overwrite
        self.now = now
        self.entries: list[dict[str, object]] = []

    def ca(self, common_name: str, stem: str, role: str) -> Issued:
        """A self-signed CA, backdated past the expired user's start, valid ten years from now."""
        issued = issue_certificate(
            common_name, is_ca=True,
            not_before=self.now - CA_BACKDATE, not_after=self.now + CA_VALIDITY,
        )
        self._save(stem, issued, role)
        return issued

    def server(self, issuer: Issued, stem: str, names: Sequence[str],
               window: tuple[datetime, datetime], role: str, chain: Path | None = None) -> None:
        """A TLS server certificate: CN is the first name, every name goes in the SAN.

        ``chain`` also writes the certificate followed by its CA, the file
        FreeRADIUS and hostapd take as certificate_file.
        """
        issued = issue_certificate(
            names[0], issuer_cert=issuer.cert, issuer_key=issuer.key,
            ekus=(SERVER_AUTH,), dns_names=names, not_before=window[0], not_after=window[1],
        )
        entry = self._save(stem, issued, role)
        if chain is not None:
            _write_file(chain, _pem(issued.cert) + _pem(issuer.cert), _PUBLIC_MODE, self.overwrite)
            entry["chain"] = chain.name

    def user(self, name: str, issuer: Issued, key_type: KeyType, client_auth: bool,
             window: tuple[datetime, datetime], role: str, password: str,
             key_passphrase: str | None) -> None:
        """A client certificate with a UPN, its key, PKCS#12 bundle and optional encrypted key."""
        # Without clientAuth the EKU still exists (S/MIME only), so OpenSSL-based
        # servers reject the certificate as NPS does, not only NPS-like checks.
        ekus = (CLIENT_AUTH,) if client_auth else (ExtendedKeyUsageOID.EMAIL_PROTECTION,)
        issued = issue_certificate(
            name, issuer_cert=issuer.cert, issuer_key=issuer.key, key_type=key_type,
            ekus=ekus, upn=_upn(name), not_before=window[0], not_after=window[1],
        )
        entry = self._save(name, issued, role)
        bundle = pkcs12.serialize_key_and_certificates(
            name.encode(), issued.key, issued.cert, [issuer.cert], _p12_encryption(password),
        )
        _write_file(self.root / f"{name}.p12", bundle, _PRIVATE_MODE, self.overwrite)
        entry["p12"] = f"{name}.p12"
        if key_passphrase is not None:
            save_private_key(self.root / f"{name}-encrypted.key", issued.key,
                             passphrase=key_passphrase, overwrite=self.overwrite)
            entry["encrypted_key"] = f"{name}-encrypted.key"

    def _save(self, stem: str, issued: Issued, role: str) -> dict[str, object]:
        """Write ``<stem>.pem`` and ``<stem>.key`` and record them in the manifest."""
        _write_file(self.root / f"{stem}.pem", _pem(issued.cert), _PUBLIC_MODE, self.overwrite)
        save_private_key(self.root / f"{stem}.key", issued.key, overwrite=self.overwrite)
        entry = _describe(issued, role, f"{stem}.pem", f"{stem}.key")
        self.entries.append(entry)
        return entry


def _user_specs(extra_users: Sequence[str]) -> dict[str, tuple[KeyType, bool, bool, bool, str]]:
    specs = dict(_USERS)
    for name in extra_users:
        if name in specs:
            continue
        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise ValueError(f"extra user name {name!r}: use letters, digits, '-', '_' or '.'")
        specs[name] = ("rsa", True, False, False, "valid client certificate (RSA 2048)")
    return specs


def _layout(root: Path, with_encrypted_keys: bool,
            specs: dict[str, tuple[KeyType, bool, bool, bool, str]] | None = None) -> Pki:
    """Every path init_pki writes, decided before anything touches the disk."""
    users = {
        name: UserCert(
            cert=root / f"{name}.pem", key=root / f"{name}.key", p12=root / f"{name}.p12",
            upn=_upn(name), key_type=spec[0],
            encrypted_key=root / f"{name}-encrypted.key" if with_encrypted_keys else None,
        )
        for name, spec in (specs or _USERS).items()
    }
    return Pki(
        directory=root,
        ca=root / "ca.pem", ca_key=root / "ca.key",
        server_cert=root / "server.pem", server_key=root / "server.key",
        server_chain=root / "server-chain.pem",
        untrusted_ca=root / "untrusted-ca.pem", untrusted_ca_key=root / "untrusted-ca.key",
        untrusted_server_cert=root / "untrusted-server.pem",
        untrusted_server_key=root / "untrusted-server.key",
        users=users,
        p12_password_file=root / P12_PASSWORD_FILE,
        manifest=root / MANIFEST_FILE,
    )


def _all_paths(pki: Pki) -> list[Path]:
    """The files of a layout, in a stable order, for the overwrite check."""
    paths = [pki.ca, pki.ca_key, pki.server_cert, pki.server_key, pki.server_chain,
             pki.untrusted_ca, pki.untrusted_ca_key, pki.untrusted_server_cert,
             pki.untrusted_server_key]
    for user in pki.users.values():
        paths += [user.cert, user.key, user.p12]
        if user.encrypted_key is not None:
            paths.append(user.encrypted_key)
    return paths + [pki.p12_password_file, pki.manifest]


def _refuse_existing(paths: Iterable[Path], overwrite: bool) -> None:
    """Fail before writing anything, so a refused run leaves the directory untouched."""
    if overwrite:
        return
    for path in paths:
        if path.exists() or path.is_symlink():
            raise FileExistsError(
                17, "refusing to overwrite an existing lab PKI file (use overwrite=True)", str(path)
            )


def _write_file(path: Path, data: bytes, mode: int, overwrite: bool) -> None:
    """Write with the final mode from the first byte; O_EXCL unless overwriting."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    fd = os.open(path, flags, mode)
    with os.fdopen(fd, "wb") as handle:
        # The umask or an older file may have left other bits; set them exactly.
        os.fchmod(handle.fileno(), mode)
        handle.write(data)


def _key_usage(key_type: KeyType, is_ca: bool) -> x509.KeyUsage:
    """CAs sign certificates and CRLs; RSA leaves may also carry key transport (TLS 1.2 RSA kx)."""
    return x509.KeyUsage(
        digital_signature=not is_ca,
        content_commitment=False,
        key_encipherment=not is_ca and key_type == "rsa",
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=is_ca,
        crl_sign=is_ca,
        encipher_only=False,
        decipher_only=False,
    )


def _authority_key_id(
    issuer_cert: x509.Certificate | None, own_key: PrivateKey
) -> x509.AuthorityKeyIdentifier:
    """AKI from the issuer's SKI when it has one (so chains build), else from the signing key."""
    if issuer_cert is None:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(own_key.public_key())
    ski = _extension(issuer_cert, x509.SubjectKeyIdentifier)
    if ski is not None:
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    issuer_public = issuer_cert.public_key()
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public)  # type: ignore[arg-type]


def _subject_alt_names(dns_names: Sequence[str], upn: str | None) -> list[x509.GeneralName]:
    """DNS names first, then the UPN as Microsoft encodes it (otherName, UTF8String)."""
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    if upn is not None:
        names.append(x509.OtherName(UPN_OID, _encode_der_utf8string(upn)))
    return names


def _encode_der_utf8string(text: str) -> bytes:
    """DER UTF8String (tag 12): cryptography wants the otherName value already DER-encoded."""
    body = text.encode("utf-8")
    return bytes([_UTF8STRING_TAG]) + _der_length(len(body)) + body


def _der_length(length: int) -> bytes:
    """DER definite length: short form below 128, else minimal long form."""
    if length < 0x80:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def _decode_der_utf8string(der: bytes) -> str:
    """Inverse of _encode_der_utf8string; rejects other tags, non-minimal lengths and trailing bytes."""
    if len(der) < 2 or der[0] != _UTF8STRING_TAG:
        raise ValueError("UPN otherName value is not a DER UTF8String")
    first = der[1]
    if first < 0x80:
        length, start = first, 2
    else:
        count = first & 0x7F
        octets = der[2:2 + count]
        if count == 0 or len(octets) != count or octets[0] == 0:
            raise ValueError("UPN otherName value has a malformed DER length")
        length, start = int.from_bytes(octets, "big"), 2 + count
        if length < 0x80:
            raise ValueError("UPN otherName value has a non-minimal DER length")
    if start + length != len(der):
        raise ValueError("UPN otherName value length does not match its contents")
    try:
        return der[start:].decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("UPN otherName value is not valid UTF-8") from None


def _p12_encryption(password: str) -> serialization.KeySerializationEncryption:
    """PBES2 AES-256 with an HMAC-SHA256 MAC: what OpenSSL 3 (eapol_test) and Windows 10+ read."""
    return (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(50_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode("utf-8"))
    )


def _describe(issued: Issued, role: str, cert_path: str, key_path: str) -> dict[str, object]:
    """One manifest entry; paths are relative so the directory can be moved."""
    cert = issued.cert
    san = _extension(cert, x509.SubjectAlternativeName)
    usages = _extension(cert, x509.ExtendedKeyUsage)
    return {
        "role": role,
        "cert": cert_path,
        "key": key_path,
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "key_type": "rsa" if isinstance(issued.key, rsa.RSAPrivateKey) else "ecdsa",
        "upn": upn_from_certificate(cert),
        "dns_names": san.get_values_for_type(x509.DNSName) if san is not None else [],
        "ekus": [oid.dotted_string for oid in usages] if usages is not None else [],
        "serial": format(cert.serial_number, "x"),
        "not_before": _iso(cert.not_valid_before_utc),
        "not_after": _iso(cert.not_valid_after_utc),
        "sha256": cert.fingerprint(hashes.SHA256()).hex(),
    }


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _upn(name: str) -> str:
    return f"{name}@{UPN_DOMAIN}"


def _iso(moment: datetime) -> str:
    """UTC timestamp in the Outcome JSON style (2027-01-01T00:00:00Z)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _require_aware(moment: datetime) -> datetime:
    """Naive datetimes would be read as UTC and silently shift validity by the local offset."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("datetimes for the lab PKI must be timezone-aware")
    return moment


def _secret_bytes(secret: str, what: str) -> bytes:
    """Encode a password; the error names only which parameter was empty, never its value."""
    if not secret:
        raise ValueError(f"{what} must not be empty")
    return secret.encode("utf-8")
