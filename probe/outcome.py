"""The Outcome: one record per authentication attempt, feeding every output.

``Outcome`` is filled by the conversation; ``finalize`` derives the verdicts
(window, expectation, degraded state, diagnosis) once, so reports and metrics
read them and never re-derive anything.  The JSON form is the schema-1 contract
in DESIGN.md.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .diagnosis import code_for_error, entry

RESULTS = ("accept", "reject", "challenge", "discard", "error")
EXPECTATIONS = ("accept", "reject", "challenge", "discard")

EXIT_OK, EXIT_DEGRADED, EXIT_FAILED, EXIT_UNKNOWN = 0, 1, 2, 3
VERDICTS = {EXIT_OK: "OK", EXIT_DEGRADED: "DEGRADED", EXIT_FAILED: "FAILED", EXIT_UNKNOWN: "UNKNOWN"}

DEFAULT_WINDOW_S = 60.0
DEFAULT_SLOW_FRACTION = 0.75


@dataclass
class AttemptRecord:
    round: int
    sent_s: float
    answered_s: float | None = None
    code: str | None = None
    retransmission: int = 0
    late: bool = False
    ignored: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    target: str
    method: str
    identity: str
    result: str = "error"
    error_kind: str | None = None
    error_detail: str | None = None
    expected: str = "accept"
    expectation_met: bool = False
    duration_s: float = 0.0
    final_response_s: float | None = None
    round_trips: int = 0
    retransmissions: int = 0
    window_s: float = DEFAULT_WINDOW_S
    within_window: bool = False
    client_timeout_s: float | None = None
    late: bool = False
    reply_message: str | None = None
    eap_detail: str | None = None  # what the EAP method learned, e.g. "TLS server sent alert: certificate expired"
    message_authenticator: str | None = None
    mppe: str = "absent"
    cryptobinding: str = "absent"
    tls: dict[str, Any] | None = None
    reply_attributes: dict[str, list[Any]] = field(default_factory=dict)
    degraded: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    diagnosis: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[AttemptRecord] = field(default_factory=list)
    # Set by the conversation: rounds answered before the final one (first factor done).
    primary_auth_done: bool = False
    schema: int = 1

    def to_dict(self) -> dict[str, Any]:
        """The schema-1 JSON form as plain values (bytes become "0x..." hex)."""
        d = _json_safe(asdict(self))
        d.pop("primary_auth_done")
        ordered = {"schema": d.pop("schema")}
        ordered.update(d)
        for key in ("duration_s", "final_response_s", "client_timeout_s"):
            if ordered[key] is not None:
                ordered[key] = round(ordered[key], 6)
        for a in ordered["attempts"]:
            for key in ("sent_s", "answered_s"):
                if a[key] is not None:
                    a[key] = round(a[key], 6)
        return ordered

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), **kw)

    @property
    def exit_code(self) -> int:
        if self.error_kind in ("local", "internal"):  # could not probe: bad local input or our own bug
            return EXIT_UNKNOWN
        if not self.expectation_met:
            return EXIT_FAILED
        return EXIT_DEGRADED if self.degraded else EXIT_OK


def _json_safe(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def finalize(o: Outcome, *, slow_fraction: float = DEFAULT_SLOW_FRACTION) -> Outcome:
    """Derive window verdict, expectation, degraded states and diagnosis (once)."""
    answered = o.result in ("accept", "reject", "challenge")
    o.within_window = answered and o.final_response_s is not None and o.final_response_s <= o.window_s
    if o.expected == "discard":
        o.expectation_met = o.result == "discard"
    else:
        o.expectation_met = o.result == o.expected and o.within_window and not o.late
    if o.expectation_met and answered and o.final_response_s is not None:
        if o.final_response_s > slow_fraction * o.window_s:
            o.degraded.append(
                f"slow answer: {o.final_response_s:.1f} s is over {slow_fraction:.0%} of the {o.window_s:g} s window"
            )
    o.diagnosis = [entry(code).render(detail) for code, detail in _diagnosis_codes(o, slow_fraction)]
    return o


_CERTIFICATE_ALERTS = ("certificate", "unknown ca", "access denied")


def _server_refused_tls(o: Outcome) -> bool:
    """A reject before the server showed its certificate, or after an alert not about our certificate."""
    if not o.tls or not o.tls.get("server_cert"):
        return True
    detail = (o.eap_detail or "").lower()
    if "sent alert" in detail:
        return not any(word in detail for word in _CERTIFICATE_ALERTS)
    return False


def _diagnosis_codes(o: Outcome, slow_fraction: float) -> list[tuple[str, str | None]]:
    codes: list[tuple[str, str | None]] = []
    eap = o.method != "pap"
    if o.result == "discard":
        if o.primary_auth_done:
            codes.append(("nps_discard_after_primary_auth", None))
        elif eap and o.round_trips > 1:
            codes.append(("eap_stalled", f"unanswered after {o.round_trips - 1} answered round(s)"))
        else:
            codes.append(("no_reply", None))
    elif o.result == "reject":
        details = [o.eap_detail] if o.eap_detail else []
        details += [f"Reply-Message: {o.reply_message!r}"] if o.reply_message else []
        detail = "; ".join(details) or None
        if o.primary_auth_done:
            code = "nps_reject_after_primary_auth"
        elif eap and _server_refused_tls(o):
            code = "server_refused_tls"
        elif o.method in ("eap-tls", "peap-tls"):
            code = "client_certificate_rejected"
        elif o.method == "peap-mschapv2":
            code = "eap_credentials_rejected"
        else:
            code = "access_reject"
        codes.append((code, detail))
    elif o.result == "challenge":
        codes.append(("otp_challenge", f"prompt: {o.reply_message!r}" if o.reply_message else None))
    elif o.result == "error":
        code = code_for_error(o.error_kind, o.error_detail)
        if code is not None:
            codes.append((code, o.error_detail))
    if o.result == "accept" and o.expected == "reject":
        codes.append(("mfa_not_enforced", None))
    if o.result == "accept" and eap and o.mppe == "absent":
        codes.append(("mppe_absent", None))
    if o.late and o.client_timeout_s is not None and o.final_response_s is not None:
        codes.append(("late_answer_beyond_client_timeout",
                      f"answered after {o.final_response_s:.1f} s, the client gives up after {o.client_timeout_s:g} s"))
    if o.result in ("accept", "reject", "challenge") and not o.within_window and o.final_response_s is not None:
        codes.append(("answer_outside_window",
                      f"{o.final_response_s:.1f} s against a {o.window_s:g} s window"))
    elif o.within_window and o.final_response_s is not None and o.final_response_s > slow_fraction * o.window_s:
        codes.append(("slow_answer", f"{o.final_response_s:.1f} s of a {o.window_s:g} s window"))
    return codes
