"""NPS's rules the emulator's EAP server applies in every method: reason codes, accounts, client certificates.

Shared by the outer session (:mod:`probe.emulator.eap_server`, EAP-TLS) and
phase 2 (:mod:`probe.emulator.peap_server`, PEAP-TLS): certificate checks in
NPS's order, with NPS reason codes: chain to a trusted CA (265), validity
period (268), Client Authentication EKU (283), SAN UPN mapped to a known
account (16).
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from probe import pki
from probe.eap.tls import TlsEngine

__all__ = ["Fail", "Reason", "UsersLookup", "account_name", "certificate_account"]

UsersLookup = Callable[[str], "str | None"]
"""Account name -> its password, or None for an unknown account (certificates only need it known)."""


class Reason(enum.IntEnum):
    """NPS reason codes (event 6273) this server produces.

    Sources: Microsoft's "NPS Reason Codes" pages (0-37, 258-282, 283-303).
    CERT_EXPIRED is 268 ("the certificate ... is expired"), recalled from
    the 258-282 page; the other numbers are quoted in PROTOCOL-NOTES.md.
    """

    BAD_CREDENTIALS = 16
    """Wrong password, unknown user, or a certificate that maps to no account."""
    EAP_NOT_COMPLETED = 22
    """EAP type not processed: no common method, TLS failure, missing cryptobinding."""
    CERT_UNTRUSTED = 265
    """The client certificate does not chain to a trusted root."""
    CERT_EXPIRED = 268
    """The client certificate is outside its validity period [number: ?]."""
    NO_CLIENT_AUTH_EKU = 283
    """The client certificate lacks the Client Authentication purpose."""


class Fail(Exception):
    """Ends the conversation with an EAP-Failure (raised deep, caught in the session's handle())."""

    def __init__(self, reason: Reason, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text


def account_name(identity: str) -> str:
    """The account an identity names: ``LAB\\alice``, ``alice@lab.test`` and ``alice`` are all alice."""
    return identity.rsplit("\\", 1)[-1].split("@", 1)[0]


def certificate_account(engine: TlsEngine, lookup: UsersLookup) -> str:
    """NPS's client certificate checks on a finished handshake; the mapped account, or Fail."""
    chain = engine.peer_chain()
    if not chain:
        raise Fail(Reason.EAP_NOT_COMPLETED, "the peer sent no client certificate")
    leaf = chain[0]
    subject = leaf.subject.rfc4514_string()
    problem = _verify_problem(engine.verify_problems)
    if problem is not None:
        reason, words = problem
        raise Fail(reason, f"client certificate {subject}: {words}")
    if not pki.has_eku(leaf, pki.CLIENT_AUTH):
        raise Fail(Reason.NO_CLIENT_AUTH_EKU, f"client certificate {subject} lacks the Client Authentication EKU")
    try:
        upn = pki.upn_from_certificate(leaf)
    except ValueError:
        raise Fail(Reason.BAD_CREDENTIALS, f"client certificate {subject}: the SAN UPN is malformed") from None
    if upn is None:
        raise Fail(Reason.BAD_CREDENTIALS, f"client certificate {subject} has no SAN UPN to map to an account")
    account = account_name(upn)
    if lookup(account) is None:
        raise Fail(Reason.BAD_CREDENTIALS, f"certificate UPN {upn} maps to no known account")
    return account


_TIME_PROBLEMS = ("certificate has expired", "certificate is not yet valid")
_PURPOSE_PROBLEMS = ("unsuitable certificate purpose", "unsupported certificate purpose")


def _verify_problem(problems: tuple[str, ...]) -> tuple[Reason, str] | None:
    """Map OpenSSL's recorded verify failures to NPS's reason: trust first, then time, then purpose."""
    if not problems:
        return None
    trust = [p for p in problems if not p.startswith(_TIME_PROBLEMS + _PURPOSE_PROBLEMS)]
    if trust:
        return Reason.CERT_UNTRUSTED, f"does not chain to a trusted CA ({trust[0]})"
    time_problems = [p for p in problems if p.startswith(_TIME_PROBLEMS)]
    if time_problems:
        return Reason.CERT_EXPIRED, f"outside its validity period ({time_problems[0]})"
    return Reason.NO_CLIENT_AUTH_EKU, f"lacks the Client Authentication EKU ({problems[0]})"
