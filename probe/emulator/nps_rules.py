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

__all__ = ["DISCARD_CLASS", "Fail", "Reason", "UsersLookup", "account_name", "certificate_account", "reason_class"]

UsersLookup = Callable[[str], "str | None"]
"""Account name -> its password, or None for an unknown account (certificates only need it known)."""


class Reason(enum.IntEnum):
    """NPS reason codes (events 6273 and 6274) this server produces.

    Sources: Microsoft's "NPS Reason Codes" pages (0-37, 258-282, 283-303), as quoted in
    PROTOCOL-NOTES.md ("second round of facts"). Each has a class (:func:`reason_class`):
    9, 262 and 266 are discard-class (event 6274, no reply), the others reject-class (6273).
    """

    DISCARDED_BY_EXTENSION = 9
    """Discarded by a third-party extension DLL (the MFA extension's ESTS_TOKEN_ERROR): event 6274, no reply."""
    BAD_CREDENTIALS = 16
    """Wrong password, unknown user, or a certificate that maps to no account."""
    EXTENSION_REJECTED = 21
    """The extension DLL rejected (MFA denied or not answered, user not in Entra / not enrolled, AccessDenied,
    InvalidSession, a TOTP user over EAP)."""
    EAP_NOT_COMPLETED = 22
    """No EAP type could be negotiated (a Nak for a method the policy lacks), or EAP could not complete (TLS)."""
    METHOD_NOT_ENABLED = 66
    """The authentication method is not enabled on the matching network policy (PAP or EAP off)."""
    EAP_TIMED_OUT = 96
    """The EAP session timed out before it completed."""
    CRYPTOBINDING_INVALID = 301
    """The PEAP Cryptobinding TLV did not verify (possible man in the middle)."""
    CRYPTOBINDING_MISSING = 302
    """The policy requires cryptobinding and the peer did not send the Cryptobinding TLV."""
    CERT_UNTRUSTED = 265
    """The client certificate does not chain to a trusted root."""
    CERT_EXPIRED = 268
    """The client certificate is outside its validity period [number: ?]."""
    NO_CLIENT_AUTH_EKU = 283
    """The client certificate lacks the Client Authentication purpose."""


DISCARD_CLASS = frozenset({9, 262, 266})
"""Reason codes NPS logs with event 6274 (request discarded, no reply); every other code is reject-class."""


def reason_class(reason: int) -> str:
    """"discard" (event 6274, no reply) or "reject" (event 6273, Access-Reject) for an NPS reason code."""
    return "discard" if reason in DISCARD_CLASS else "reject"


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
