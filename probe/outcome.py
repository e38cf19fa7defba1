"""The Outcome: one record per authentication attempt, feeding every output.

``Outcome`` is filled by the conversation (the raw fields: what the server
did); the judge in :mod:`probe.verdict` derives the verdict fields (window,
expectation, degraded states, diagnosis) once, so reports and metrics read them
and never re-derive anything.  The JSON form is the schema-1 contract in
DESIGN.md.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum, StrEnum
from typing import Any, Literal

from .model import DEFAULT_SLOW_FRACTION, DEFAULT_WINDOW_S, ExpectedResult

__all__ = ["RESULTS", "EXPECTATIONS", "EXIT_OK", "EXIT_DEGRADED", "EXIT_FAILED", "EXIT_UNKNOWN", "VERDICTS",
           "DEFAULT_WINDOW_S", "DEFAULT_SLOW_FRACTION", "ErrorKind", "Result", "AttemptRecord", "Outcome",
           "finalize"]

Result = Literal["accept", "reject", "challenge", "discard", "error"]
Mppe = Literal["absent", "match", "mismatch", "unverified"]
"""match/mismatch: the method finished and its keys were compared (mismatch also: keys that do not
decrypt); unverified: keys present but the method had not finished, so nothing to compare with."""
Cryptobinding = Literal["absent", "valid", "invalid"]
MessageAuthenticator = Literal["valid", "absent"]

RESULTS: tuple[Result, ...] = ("accept", "reject", "challenge", "discard", "error")
EXPECTATIONS: tuple[ExpectedResult, ...] = ("accept", "reject", "challenge", "discard")

EXIT_OK, EXIT_DEGRADED, EXIT_FAILED, EXIT_UNKNOWN = 0, 1, 2, 3
VERDICTS = {EXIT_OK: "OK", EXIT_DEGRADED: "DEGRADED", EXIT_FAILED: "FAILED", EXIT_UNKNOWN: "UNKNOWN"}


class ErrorKind(StrEnum):
    """Every ``error_kind`` an Outcome can carry (str-valued: the JSON shows the same strings)."""

    BAD_AUTHENTICATOR = "bad_authenticator"  # a reply whose Response Authenticator / Message-Authenticator fails
    UNREACHABLE = "unreachable"  # ICMP port/host unreachable
    MALFORMED = "malformed"  # a reply that does not parse
    TLS = "tls"  # the TLS handshake inside EAP failed
    EAP = "eap"  # the EAP conversation broke the protocol
    MSCHAPV2 = "mschapv2"  # the inner MS-CHAPv2 broke the protocol
    CRYPTOBINDING = "cryptobinding"  # the PEAP Cryptobinding TLV did not verify
    MPPE_MISMATCH = "mppe_mismatch"  # MS-MPPE keys that do not decrypt or differ from the derived ones
    RADSEC = "radsec"  # the RadSec (RADIUS over TLS) connection failed: TLS handshake, closed by the server
    DEADLINE = "deadline"  # the whole authentication took longer than its deadline (--deadline)
    LOCAL = "local"  # could not probe: bad local input (certificate, name resolution, socket)
    INTERNAL = "internal"  # could not probe: a bug of ours

    @classmethod
    def coerce(cls, kind: str | None) -> ErrorKind | None:
        """The member for a kind string (None stays None); an unknown kind is a bug: INTERNAL."""
        if kind is None or isinstance(kind, ErrorKind):
            return kind
        try:
            return cls(kind)
        except ValueError:
            return cls.INTERNAL


# Could not probe: exit 3 (UNKNOWN) whatever the server did.
COULD_NOT_PROBE = frozenset({ErrorKind.LOCAL, ErrorKind.INTERNAL})


@dataclass
class AttemptRecord:
    round: int
    sent_s: float
    answered_s: float | None = None
    code: str | None = None
    retransmission: int = 0
    late: bool = False
    ignored: list[str] = field(default_factory=list)  # the first few invalid replies (probe.radius.transport)
    ignored_total: int = 0  # every invalid reply of the round, kept or not
    strays: list[str] = field(default_factory=list)  # the first few replies whose Identifier matched no request
    stray_total: int = 0  # every stray of the round, kept or not
    stray_unmatched: int = 0  # kept strays that answer no earlier request (not stragglers after a retransmission)


@dataclass
class Outcome:
    target: str
    method: str
    identity: str
    source: str | None = None  # the local address the requests left from (NPS knows its clients by it)
    result: Result = "error"
    error_kind: ErrorKind | None = None
    error_detail: str | None = None
    expected: ExpectedResult = "accept"
    expectation_met: bool = False
    duration_s: float = 0.0
    final_response_s: float | None = None
    round_trips: int = 0
    retransmissions: int = 0
    window_s: float = DEFAULT_WINDOW_S
    within_window: bool = False
    client_timeout_s: float | None = None
    deadline_s: float | None = None  # the whole authentication's deadline (--deadline, or its default)
    late: bool = False
    reply_message: str | None = None
    eap_detail: str | None = None  # what the EAP method learned, e.g. "TLS server sent alert: certificate expired"
    # The outer EAP methods the server proposed, in order ("PEAP", "TLS"); one that is not ours got a Nak.
    eap_offered: list[str] = field(default_factory=list)
    message_authenticator: MessageAuthenticator | None = None
    mppe: Mppe = "absent"
    cryptobinding: Cryptobinding = "absent"
    tls: dict[str, Any] | None = None
    transport: dict[str, Any] | None = None  # RadSec: the TLS connection's facts (None: RADIUS over UDP)
    accounting: dict[str, Any] | None = None  # the accounting check: session id, records sent and acknowledged
    reply_attributes: dict[str, list[Any]] = field(default_factory=dict)
    degraded: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    diagnosis: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[AttemptRecord] = field(default_factory=list)
    ignored_replies: int = 0  # replies that failed verification, over every round (each round keeps a few)
    stray_replies: int = 0  # datagrams whose Identifier matched no request in flight, over every round
    # The state a TLS/EAP error was raised in (e.g. the TLS session state), when the method knows it.
    error_state: str | None = None
    # Set by the conversation: rounds answered before the final one (first factor done).
    primary_auth_done: bool = False
    schema: int = 1

    def to_dict(self) -> dict[str, Any]:
        """The schema-1 JSON form as plain values (bytes become "0x..." hex)."""
        d = _json_safe(asdict(self))
        d.pop("primary_auth_done")
        ordered = {"schema": d.pop("schema")}
        ordered.update(d)
        for key in ("duration_s", "final_response_s", "client_timeout_s", "deadline_s"):
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
    def could_not_probe(self) -> bool:
        """Bad local input or our own bug: the server was not (fully) probed."""
        return ErrorKind.coerce(self.error_kind) in COULD_NOT_PROBE

    @property
    def exit_code(self) -> int:
        """0 OK, 1 DEGRADED, 2 FAILED, 3 UNKNOWN: the one exit code (a CheckResult reads this one)."""
        if self.could_not_probe:
            return EXIT_UNKNOWN
        if not self.expectation_met:
            return EXIT_FAILED
        return EXIT_DEGRADED if self.degraded else EXIT_OK

    @property
    def verdict(self) -> str:
        return VERDICTS[self.exit_code]


def _json_safe(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def finalize(o: Outcome, *, slow_fraction: float = DEFAULT_SLOW_FRACTION) -> Outcome:
    """The conversation's entry to the judge: the Outcome judged against ``Expectation(result=o.expected)``.

    Only what the conversation knows is judged here (window, lateness, slow
    answer, diagnosis); certificate expiry and unsigned replies are the front
    door's options (``--cert-warn-days``, ``--allow-unsigned``), judged when the
    check is (``probe.checks.evaluate``, which every front door calls).

    A thin wrapper over :func:`probe.verdict.judge_outcome` (the one judge).  A
    check with a fuller expectation (reply message, attributes, certificates,
    Message-Authenticator) is judged by ``probe.verdict`` with it, which derives
    every verdict field again from the raw ones: nothing is appended to a judged
    Outcome.
    """
    from .model import Expectation
    from .verdict import JudgeOptions, judge_outcome

    judge_outcome(o, Expectation(result=o.expected, message_authenticator="optional"),
                  JudgeOptions(cert_warn_days=None, slow_fraction=slow_fraction))
    return o
