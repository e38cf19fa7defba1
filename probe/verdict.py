"""The one judge: a raw Outcome + an Expectation -> verdict, degraded states, diagnosis, exit code.

Every front door (``auth``, ``run``, ``serve``, ``/probe``, ``demo``) ends here,
so the same server gets the same verdict however it is asked.  The conversation
fills the Outcome's raw fields (what the server did); :func:`judge_outcome`
derives every verdict field from them, once per call and by assignment (never
by appending), so judging an Outcome again with a fuller expectation gives the
same answer as judging it the first time with that expectation.

Degraded states are the ones an admin must act on before they become outages:
an answer that eats most of the MFA window, a certificate about to expire,
replies without Message-Authenticator (Blast-RADIUS, KB5040268).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .diagnosis import ACCOUNT_RESTRICTION, code_for_error, entry, loss_note
from .methods import METHODS
from .model import DEFAULT_SLOW_FRACTION, Expectation
from .outcome import EXIT_DEGRADED, EXIT_FAILED, EXIT_OK, EXIT_UNKNOWN, VERDICTS, ErrorKind, Outcome
from .radius.dictionary import DictionaryError, RadiusDictionary, default_dictionary
from .radius.transport import STRAY_PREVIOUS

DEFAULT_CERT_WARN_DAYS = 30
ANSWERED = ("accept", "reject", "challenge")
BLAST_RADIUS = (
    "replies carry no Message-Authenticator, so a forged reply cannot be told apart (Blast-RADIUS, "
    "CVE-2024-3596); see KB5040268: `netsh nps set requiremsgauth` and `limitproxystate` on NPS, and prefer "
    "servers that sign every reply (FreeRADIUS 3.2.5 and later)"
)

__all__ = ["ANSWERED", "BLAST_RADIUS", "DEFAULT_CERT_WARN_DAYS", "EXIT_DEGRADED", "EXIT_FAILED", "EXIT_OK",
           "EXIT_UNKNOWN", "JudgeOptions", "Judgement", "judge_outcome", "diagnosis_codes"]


@dataclass(frozen=True)
class JudgeOptions:
    """How strict the judge is: ``run``/``serve``/``auth`` flags of the same names.

    ``cert_warn_days`` None: certificates are not judged (the conversation's own
    first judgement, before a front door judges with its options).
    """

    cert_warn_days: int | None = DEFAULT_CERT_WARN_DAYS
    slow_fraction: float = DEFAULT_SLOW_FRACTION
    now: datetime | None = None  # default: the time of judging
    dictionary: RadiusDictionary | None = None  # for attribute expectations; default: the bundled one


@dataclass(frozen=True)
class Judgement:
    """What the judge found besides the Outcome's own fields: failures, degraded states, exit code."""

    failures: tuple[str, ...]
    degraded: tuple[str, ...]
    exit_code: int

    @property
    def verdict(self) -> str:
        return VERDICTS[self.exit_code]


def judge_outcome(o: Outcome, expectation: Expectation, options: JudgeOptions = JudgeOptions()) -> Judgement:
    """Judge ``o`` against ``expectation``: sets its verdict fields and returns the Judgement.

    Sets ``expected``, ``within_window``, ``expectation_met``, ``degraded`` and
    ``diagnosis`` (each assigned whole, from the raw fields only); the returned
    exit code is the Outcome's own ``exit_code``.
    """
    o.error_kind = ErrorKind.coerce(o.error_kind)
    o.expected = expectation.result
    answered = o.result in ANSWERED
    o.within_window = answered and o.final_response_s is not None and o.final_response_s <= o.window_s
    if o.expected == "discard":
        basic = o.result == "discard"
    else:
        basic = o.result == o.expected and o.within_window and not o.late
    codes = diagnosis_codes(o, options.slow_fraction)
    states: list[tuple[str, str]] = []  # (catalogue code, degraded text) beyond the answer's own
    if options.cert_warn_days is not None:
        states += certificate_states(o, options.cert_warn_days, options.now or datetime.now(timezone.utc))
    if o.message_authenticator == "absent" and expectation.message_authenticator == "required":
        states.append(("message_authenticator_absent", BLAST_RADIUS))
    if o.could_not_probe:
        failures = [f"could not probe: {o.error_detail}"]
        states = []
    elif not basic:
        failures = [_unmet(o, expectation, codes)]
    else:
        failures = _expectation_failures(expectation, o, options.dictionary or default_dictionary())
        if failures:  # the answer was the expected kind: what failed is the expectation, said first
            codes.insert(0, ("expectation_unmet", "; ".join(failures)))
    o.expectation_met = not failures
    degraded = []
    if o.expectation_met and answered and o.final_response_s is not None \
            and o.final_response_s > options.slow_fraction * o.window_s:
        degraded.append(f"slow answer: {o.final_response_s:.1f} s is over {options.slow_fraction:.0%} "
                        f"of the {o.window_s:g} s window")
    degraded += [text for _, text in states]
    o.degraded = degraded
    state_codes = [(code, None if code == "message_authenticator_absent" else text) for code, text in states]
    # A met expectation's own answer (the OTP challenge it expected) is no finding: what degraded it comes first.
    codes = (state_codes + codes) if o.expectation_met and degraded and not _slow_first(codes) else codes + state_codes
    o.diagnosis = [entry(code).render(detail) for code, detail in codes]  # each code at most once by construction
    return Judgement(tuple(failures), tuple(degraded), o.exit_code)


def _slow_first(codes: list[tuple[str, str | None]]) -> bool:
    """A slow answer is itself the degraded state: it stays first."""
    return any(code == "slow_answer" for code, _ in codes)


def _unmet(o: Outcome, expectation: Expectation, codes: list[tuple[str, str | None]]) -> str:
    """The one failure of an answer that is not the expected one, or not in time."""
    if o.result != expectation.result:
        got = o.result + (f" ({o.error_kind}: {o.error_detail})" if o.error_kind else "")
        first = f"; {codes[0][0]}" if codes else ""
        return f"expected {expectation.result}, got {got}{first}"
    if o.late:
        when = f" after {o.final_response_s:.1f} s" if o.final_response_s is not None else ""
        limit = f"{o.client_timeout_s:g} s " if o.client_timeout_s is not None else ""
        return f"{o.result} came{when}, past the client's {limit}timeout"
    return (f"{o.result} came outside the {o.window_s:g} s window"
            + (f" ({o.final_response_s:.1f} s)" if o.final_response_s is not None else ""))


def _expectation_failures(exp: Expectation, o: Outcome, dictionary: RadiusDictionary) -> list[str]:
    """What the check expected of an answer of the right kind, in time: time bound, Reply-Message, attributes."""
    failures = []
    if exp.within_s is not None and o.duration_s > exp.within_s:
        failures.append(f"answered in {o.duration_s:.3f} s, expected within {exp.within_s:g} s")
    if exp.reply_message is not None and not exp.reply_message.search(o.reply_message or ""):
        failures.append(f"Reply-Message {o.reply_message!r} does not match /{exp.reply_message.pattern}/")
    for name, wanted in exp.attributes.items():
        failures += _attribute_failures(name, wanted, o.reply_attributes.get(name, []), dictionary)
    return failures


def _wire(dictionary: RadiusDictionary, name: str, value: object) -> bytes | None:
    """Compare attribute values as the bytes they are on the wire (1 == "1", "VLAN" == 13)."""
    try:
        return dictionary.encode(name, value if isinstance(value, (str, int, bytes)) else str(value))[1]
    except DictionaryError:
        return None


def _attribute_failures(name: str, wanted: list[str], got: list[Any], dictionary: RadiusDictionary) -> list[str]:
    have = {_wire(dictionary, name, v) for v in got}
    shown = ", ".join(_show(v) for v in got) or "nothing"
    missing = []
    for value in wanted:
        wire = _wire(dictionary, name, value)
        if wire is None or wire not in have:  # a value that does not encode matches nothing
            missing.append(f"{name}: expected {value!r}, got {shown}")
    return missing


def _show(value: object) -> str:
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
        return repr(text) if text.isprintable() else "0x" + value.hex()
    return repr(value)


def certificate_states(o: Outcome, warn_days: int, now: datetime) -> list[tuple[str, str]]:
    """(catalogue code, text) for each certificate that expired or expires within ``warn_days``."""
    states = []
    for facts, key, what, code in (
            (o.tls, "server_cert", "server", "server_certificate_expiring"),
            (o.tls, "client_cert", "client", "client_certificate_expiring"),
            (o.transport, "server_cert", "RadSec server", "radsec_server_certificate_expiring"),
            (o.transport, "client_cert", "RadSec client", "radsec_client_certificate_expiring")):
        cert = (facts or {}).get(key) or {}
        not_after = cert.get("not_after")
        if not not_after:
            continue
        try:
            expiry = datetime.fromisoformat(str(not_after).replace("Z", "+00:00"))
        except ValueError:
            continue
        days = (expiry - now).total_seconds() / 86400
        subject = cert.get("subject", "?")
        if days < 0:
            states.append((code, f"{what} certificate {subject} expired on {not_after}"))
        elif days <= warn_days:
            states.append((code, f"{what} certificate {subject} expires in {int(days)} day(s) ({not_after}); "
                                 f"renew it before it stops authentication"))
    return states


# ---------------------------------------------------------------------------
# Diagnosis codes of the answer itself


_CERTIFICATE_ALERTS = ("certificate", "unknown ca", "access denied")


def _server_refused_tls(o: Outcome) -> bool:
    """A reject before the server showed its certificate, or after an alert not about our certificate."""
    if not o.tls or not o.tls.get("server_cert"):
        return True
    detail = (o.eap_detail or "").lower()
    if "sent alert" in detail:
        return not any(word in detail for word in _CERTIFICATE_ALERTS)
    return False


def method_not_offered(o: Outcome, eap_type: int | None) -> bool:
    """The server proposed other EAP methods and never ours (our Nak asked for it): the policy does not offer it."""
    from .eap.packet import type_label

    return bool(o.eap_offered) and eap_type is not None and type_label(eap_type) not in o.eap_offered


def diagnosis_codes(o: Outcome, slow_fraction: float) -> list[tuple[str, str | None]]:
    """(catalogue code, detail) for what the answer shows, in the order an admin should check them."""
    codes: list[tuple[str, str | None]] = []
    spec = METHODS.get(o.method)
    eap = spec is not None and spec.eap
    if o.result == "discard":
        final = [a for a in o.attempts if a.round == o.round_trips]
        loss = loss_note(len(final))
        unmatched = sum(a.stray_unmatched for a in final)
        if unmatched:  # the server did answer: not silence, whatever round it was
            kept = next((s for a in final for s in a.strays if f" {STRAY_PREVIOUS}: " not in s), None)
            codes.append(("replies_match_no_request", "; ".join(filter(None, (
                f"{unmatched} repl(ies) to round {o.round_trips} matched no request in flight", kept)))))
        elif o.primary_auth_done:
            codes.append(("nps_discard_after_primary_auth", loss))
        elif eap and o.round_trips > 1:
            codes.append(("eap_stalled", "; ".join(filter(None, (
                f"unanswered after {o.round_trips - 1} answered round(s)", loss)))))
        else:  # name the address the request left from: NPS knows its clients by it
            sent_from = f"sent from {o.source}" if o.source else None
            silent = spec.discard_code if spec is not None else "no_reply"
            codes.append((silent, "; ".join(filter(None, (sent_from, loss))) or None))
    elif o.result == "reject":
        details = [o.eap_detail] if o.eap_detail else []
        details += [f"Reply-Message: {o.reply_message!r}"] if o.reply_message else []
        if o.primary_auth_done and spec is not None and spec.otp:
            code = "otp_rejected"  # our code answered the server's challenge: the password was right, the code not
        elif o.primary_auth_done:
            code = "nps_reject_after_primary_auth"
        elif eap and spec is not None and method_not_offered(o, spec.eap_type):
            code = "eap_method_not_offered"
            details.insert(0, f"the server offered {', '.join(o.eap_offered)}")
        elif ACCOUNT_RESTRICTION.match(o.eap_detail or ""):  # MS-CHAP-Error E=646..649: the account, not the password
            code = "account_restricted"
        elif eap and spec is not None and spec.tls_versions and _server_refused_tls(o):  # a TLS method
            code = "server_refused_tls"
        else:
            code = spec.reject_code if spec is not None else "access_reject"
        codes.append((code, "; ".join(details) or None))
    elif o.result == "challenge":
        codes.append(("otp_challenge", f"prompt: {o.reply_message!r}" if o.reply_message else None))
    elif o.result == "error":
        # keys that came before the method finished: the unverified entry is this error's own explanation
        error_code = "mppe_unverified" if o.mppe == "unverified" else code_for_error(o.error_kind, o.error_detail)
        if error_code is not None:
            codes.append((error_code, o.error_detail))
        if o.mppe == "mismatch" and error_code != "mppe_mismatch":  # e.g. no EAP-Success, and wrong keys too
            codes.append(("mppe_mismatch", None))
    if o.result == "accept" and o.expected == "reject":
        codes.append(("mfa_not_enforced", None))
    if o.result == "accept" and spec is not None and spec.mppe and o.mppe == "absent":
        codes.append(("mppe_absent", None))
    if o.late and o.client_timeout_s is not None and o.final_response_s is not None:
        codes.append(("late_answer_beyond_client_timeout",
                      f"answered after {o.final_response_s:.1f} s, the client gives up after {o.client_timeout_s:g} s"))
    if o.result in ANSWERED and not o.within_window and o.final_response_s is not None:
        codes.append(("answer_outside_window", f"{o.final_response_s:.1f} s against a {o.window_s:g} s window"))
    elif o.within_window and o.final_response_s is not None and o.final_response_s > slow_fraction * o.window_s:
        codes.append(("slow_answer", f"{o.final_response_s:.1f} s of a {o.window_s:g} s window"))
    return codes
