"""Server certificate validation for the EAP peer, and certificate summaries for reports.

Who checks what, explicitly:

* **OpenSSL** builds the server's chain during the handshake against the
  ``--ca`` file (or the system store without one) and checks signatures, CA
  constraints and validity dates with its own clock. The peer's contexts run
  it in *recording* mode (:func:`probe.eap.tls.client_context` with
  ``verify=False``): every problem is written down
  (:attr:`probe.eap.tls.TlsEngine.verify_problems`) and the handshake goes on,
  so that one place - :func:`validate_server` - decides, and ``--insecure``
  can still report what would have failed.
* **This module** turns those problems into words and adds the policy checks
  OpenSSL does not do for us: the leaf's name (RFC 6125) and its Extended Key
  Usage. The peer calls it as soon as the server's Certificate message has
  been processed, before our next flight (client certificate, Finished,
  anything inside the tunnel) is handed out.

Policy decisions, the way a Windows client configured to "verify the
server's identity" behaves (KB 814394, "Certificate requirements when you
use EAP-TLS or PEAP"):

* The Server Authentication EKU (1.3.6.1.5.5.7.3.1) is required. A
  certificate without any EKU extension is refused too: the KB requires the
  purpose to be present, and an NPS certificate without it is a
  misconfiguration worth seeing. (OpenSSL alone would accept it.)
* Names follow RFC 6125: DNS SANs only when the certificate has any; the
  subject CN is looked at only when it has no DNS SAN at all. A wildcard is
  honoured only as the whole left-most label ("*.lab.test"), matches exactly
  one label, and never in a name with fewer than three labels ("*.test").
  Partial wildcards ("nps*.lab.test") never match.
* No server name configured: the name is not checked, and a warning says so.

sans-IO: no clock is read here (expiry comes from OpenSSL's verdict; callers
pass ``now`` where days are counted), no sockets.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


SERVER_AUTH_OID = ExtendedKeyUsageOID.SERVER_AUTH

STATUS_OK = "ok"
STATUS_INSECURE = "skipped (--insecure)"
FAILED_PREFIX = "failed: "

_EXPIRED = "certificate has expired"
_NOT_YET_VALID = "certificate is not yet valid"
_BAD_PURPOSE = ("unsupported certificate purpose", "unsuitable certificate purpose")  # OpenSSL 1.1 / 3
_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "Server Authentication",
    ExtendedKeyUsageOID.CLIENT_AUTH: "Client Authentication",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "Secure Email",
    ExtendedKeyUsageOID.CODE_SIGNING: "Code Signing",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "Any Purpose",
}
_PROBLEM = re.compile(r"^(?P<reason>.*) \(depth (?P<depth>\d+): (?P<subject>.*)\)$")


# ---------------------------------------------------------------------------
# Certificate summaries (the report's "server_cert", "chain", "client_cert")


def iso_z(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, to the second: the form the Outcome JSON uses."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lower-case hex (what NPS and browsers show, without colons)."""
    return cert.fingerprint(hashes.SHA256()).hex()


def dns_names(cert: x509.Certificate) -> list[str]:
    """The certificate's DNS SubjectAltNames, in order ([] without the extension)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.DNSName))


def common_names(cert: x509.Certificate) -> list[str]:
    """The subject's CN values (text only)."""
    return [str(attr.value) for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def describe(cert: x509.Certificate) -> dict[str, object]:
    """One chain entry: subject, issuer, not_after, sha256."""
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_after": iso_z(cert.not_valid_after_utc),
        "sha256": fingerprint(cert),
    }


def describe_leaf(cert: x509.Certificate) -> dict[str, object]:
    """The server certificate: a chain entry plus its DNS SANs."""
    return {**describe(cert), "san_dns": dns_names(cert)}


def describe_client(cert: x509.Certificate, now: datetime | None) -> dict[str, object]:
    """Our own certificate: subject, not_after and, when ``now`` is given, whole days left (negative once expired)."""
    days = (cert.not_valid_after_utc - now).days if now is not None else None
    return {"subject": cert.subject.rfc4514_string(), "not_after": iso_z(cert.not_valid_after_utc), "days_left": days}


# ---------------------------------------------------------------------------
# Name matching (RFC 6125 section 6.4)


def _normalise(name: str) -> str:
    """Compare names case-insensitively and without a trailing root dot."""
    return name.strip().rstrip(".").lower()


def name_matches(pattern: str, host: str) -> bool:
    """Does the certificate name ``pattern`` cover ``host``? (RFC 6125 6.4.1, 6.4.3)"""
    wanted, presented = _normalise(host), _normalise(pattern)
    if not wanted or not presented:
        return False
    if "*" not in presented:
        return wanted == presented
    labels, host_labels = presented.split("."), wanted.split(".")
    if labels[0] != "*" or any("*" in label for label in labels[1:]):
        return False
    if len(labels) < 3 or len(host_labels) != len(labels) or not host_labels[0]:
        return False
    return host_labels[1:] == labels[1:]


def certificate_names(cert: x509.Certificate) -> list[str]:
    """The names a client may match: DNS SANs, or the CN when there is no DNS SAN (RFC 6125 6.4.4)."""
    return dns_names(cert) or common_names(cert)


def check_name(cert: x509.Certificate, server_name: str) -> str | None:
    """A problem sentence when no certificate name covers ``server_name``, else None."""
    names = certificate_names(cert)
    if any(name_matches(name, server_name) for name in names):
        return None
    has = ", ".join(names) if names else "no DNS name and no CN"
    return f"server name mismatch: wanted {server_name}, certificate has {has}"


def check_eku(cert: x509.Certificate) -> str | None:
    """A problem sentence unless the leaf is for Server Authentication (absent EKU counts as a problem)."""
    try:
        usages = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return ("server certificate has no Extended Key Usage: Windows clients require "
                f"Server Authentication ({SERVER_AUTH_OID.dotted_string})")
    if SERVER_AUTH_OID in usages:
        return None
    listed = ", ".join(_EKU_NAMES.get(oid, oid.dotted_string) for oid in usages) or "nothing"
    return f"server certificate is not for Server Authentication: its Extended Key Usage lists {listed}"


# ---------------------------------------------------------------------------
# The verdict


@dataclass(frozen=True)
class VerifyProblem:
    """One OpenSSL verify problem as :mod:`probe.eap.tls` records it: "reason (depth N: subject)"."""

    reason: str
    depth: int | None = None
    subject: str | None = None

    @classmethod
    def parse(cls, text: str) -> VerifyProblem:
        """Split the recorded text; an unexpected form keeps the whole text as the reason."""
        match = _PROBLEM.match(text)
        if match is None:
            return cls(text)
        return cls(match["reason"], int(match["depth"]), match["subject"])


@dataclass(frozen=True)
class Validation:
    """The outcome of :func:`validate_server`.

    ``status`` is the report's "validation" value: "ok", "skipped (--insecure)"
    or "failed: <first problem>". ``problems`` lists every problem found (also
    under --insecure); ``warnings`` are sentences for the report.
    """

    status: str
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def failed(self) -> bool:
        """True when the server must not be trusted (never under --insecure)."""
        return self.status.startswith(FAILED_PREFIX)

    @property
    def reason(self) -> str:
        """The first problem, the one the failure is reported with."""
        return self.problems[0] if self.problems else ""


def validate_server(
    chain: Sequence[x509.Certificate],
    verify_problems: Sequence[str],
    *,
    server_name: str | None,
    insecure: bool,
    resumed: bool = False,
) -> Validation:
    """Decide whether to trust the server: chain problems, expiry, EKU, then the name.

    ``chain`` is the server's chain, leaf first, as received; ``verify_problems``
    what OpenSSL recorded while checking it. On a resumed session OpenSSL
    checks nothing (the chain was validated when the session was made), so
    only the policy checks run, on the leaf the session remembers.
    """
    warnings: list[str] = []
    if not chain:
        problems = [] if resumed else ["server sent no certificate"]
        if resumed:
            warnings.append("session resumed: the server certificate was validated when the session was made")
    else:
        problems = _chain_problems(chain, [VerifyProblem.parse(text) for text in verify_problems])
        problems += [p for p in (check_eku(chain[0]),) if p]
        if server_name:
            problems += [p for p in (check_name(chain[0], server_name),) if p]
    if not server_name:
        warnings.append("server name not checked (no server name configured)")
    if insecure:
        warnings.insert(0, "server certificate validation skipped (--insecure)")
        warnings += [f"would fail: {problem}" for problem in problems]
        return Validation(STATUS_INSECURE, tuple(problems), tuple(warnings))
    status = FAILED_PREFIX + problems[0] if problems else STATUS_OK
    return Validation(status, tuple(problems), tuple(warnings))


def _chain_problems(chain: Sequence[x509.Certificate], recorded: Sequence[VerifyProblem]) -> list[str]:
    """Trust problems first, then validity dates; the leaf's purpose is left to :func:`check_eku`."""
    leaf = chain[0]
    trust: list[str] = []
    dates: list[str] = []
    for problem in recorded:
        cert = _certificate_named(chain, problem)
        if problem.reason in _BAD_PURPOSE and problem.depth == 0:
            continue
        if problem.reason == _EXPIRED:
            dates.append(_expired(cert, problem))
        elif problem.reason == _NOT_YET_VALID:
            dates.append(_not_yet_valid(cert, problem))
        else:
            trust.append(
                f"server certificate not trusted: {problem.reason} "
                f"({leaf.subject.rfc4514_string()}, issuer {leaf.issuer.rfc4514_string()})"
            )
    return _unique(trust + dates)


def _certificate_named(chain: Sequence[x509.Certificate], problem: VerifyProblem) -> x509.Certificate | None:
    """The certificate a problem is about, found by its subject.

    OpenSSL's depth counts the chain it built, not the list the server sent (which may
    hold extra or unrelated certificates), so the depth alone can point at the wrong one.
    """
    if problem.subject is None:
        return None
    for cert in chain:
        if cert.subject.rfc4514_string() == problem.subject:
            return cert
    return None


def _expired(cert: x509.Certificate | None, problem: VerifyProblem) -> str:
    """Words for an expired certificate anywhere in the chain."""
    if cert is None:
        return f"server certificate expired ({problem.subject or 'unknown certificate'})"
    which = "server certificate" if problem.depth == 0 else "CA certificate in the server's chain"
    return f"{which} expired: {cert.subject.rfc4514_string()} was valid until {iso_z(cert.not_valid_after_utc)}"


def _not_yet_valid(cert: x509.Certificate | None, problem: VerifyProblem) -> str:
    """Words for a certificate whose validity starts in the future (or a clock that is behind)."""
    if cert is None:
        return f"server certificate not yet valid ({problem.subject or 'unknown certificate'})"
    which = "server certificate" if problem.depth == 0 else "CA certificate in the server's chain"
    return f"{which} not yet valid: {cert.subject.rfc4514_string()} is valid from {iso_z(cert.not_valid_before_utc)}"


def _unique(items: list[str]) -> list[str]:
    """OpenSSL may report one problem twice (e.g. per verification pass); keep the first of each."""
    return list(dict.fromkeys(items))
