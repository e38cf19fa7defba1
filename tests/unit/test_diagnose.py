"""The sans-IO diagnosis (probe/diagnose.py): Outcomes in, the next step or one cause out; no I/O."""

from __future__ import annotations

import json

import pytest

from probe.diagnose import CAUSES, Diagnosis, Facts
from probe.outcome import EXIT_DEGRADED, EXIT_FAILED, EXIT_OK, ErrorKind, Outcome


def outcome(result: str, t: float | None = 0.01, *, signed: bool = True, kind: ErrorKind | None = None,
            detail: str | None = None, primary: bool = False, rounds: int = 1) -> Outcome:
    o = Outcome(target="192.0.2.1:1812", method="pap", identity="x", source="192.0.2.50")
    o.result = result  # type: ignore[assignment]
    o.final_response_s = t if result in ("accept", "reject", "challenge") else None
    o.message_authenticator = ("valid" if signed else "absent") if result != "discard" else None
    o.error_kind, o.error_detail = kind, detail
    o.primary_auth_done, o.round_trips = primary, rounds
    return o


def play(facts: Facts, *answers: Outcome) -> Diagnosis:
    """Feed ``answers`` to the steps the machine asks for; the machine must conclude exactly then."""
    d = Diagnosis(facts, source="192.0.2.50")
    for o in answers:
        step = d.next_step()
        assert step is not None, f"the diagnosis ended before answer {o.result}"
        d.record(step, o)
    assert d.next_step() is None and d.conclusion is not None
    return d


ACCOUNT = Facts(account=True, allow_push=True)
REJECT = outcome("reject")


@pytest.mark.parametrize(("facts", "answers", "cause", "keys"), [
    (Facts(), [REJECT, REJECT], "healthy", ["unknown_user", "unknown_user_unsigned"]),
    (Facts(), [REJECT, outcome("discard")], "message_authenticator_required", ["unknown_user", "unknown_user_unsigned"]),
    (Facts(), [outcome("error", kind=ErrorKind.UNREACHABLE, detail="ICMP port unreachable: nothing listens there")],
     "nothing_listens", ["unknown_user"]),
    (Facts(), [outcome("error", kind=ErrorKind.UNREACHABLE, detail="ICMP host unreachable")], "no_route",
     ["unknown_user"]),
    (Facts(), [outcome("error", kind=ErrorKind.BAD_AUTHENTICATOR, detail="bad")], "wrong_secret", ["unknown_user"]),
    (Facts(), [outcome("discard"), outcome("error", kind=ErrorKind.BAD_AUTHENTICATOR, detail="bad")], "wrong_secret",
     ["unknown_user", "unknown_user_unsigned"]),
    (Facts(), [outcome("discard"), outcome("discard")], "unknown_client", ["unknown_user", "unknown_user_unsigned"]),
    (Facts(), [outcome("discard"), REJECT], "signed_requests_dropped", ["unknown_user", "unknown_user_unsigned"]),
    (Facts(), [outcome("accept")], "accepts_unknown_user", ["unknown_user"]),
    (ACCOUNT, [REJECT, REJECT, outcome("accept")], "wrong_password_accepted", None),
    (ACCOUNT, [REJECT, REJECT, outcome("discard")], "wrong_password_unanswered", None),
    (ACCOUNT, [REJECT, REJECT, outcome("reject", 7.0)], "wrong_password_slow", None),
    (ACCOUNT, [REJECT, REJECT, REJECT, outcome("accept", 3.0)], "healthy", None),
    (ACCOUNT, [REJECT, outcome("discard"), REJECT, outcome("accept", 3.0)], "message_authenticator_required", None),
    (ACCOUNT, [REJECT, REJECT, REJECT, outcome("discard")], "ests_token_error", None),
    (ACCOUNT, [REJECT, REJECT, REJECT, outcome("reject", 9.0)], "mfa_denied", None),
    (ACCOUNT, [REJECT, REJECT, REJECT, outcome("reject", 0.02)], "mfa_not_possible", None),
    (ACCOUNT, [REJECT, REJECT, REJECT, outcome("challenge", 0.02)], "otp_challenge", None),
    (ACCOUNT, [REJECT, REJECT, REJECT, outcome("accept", 12.0)], "approval_slower_than_nas_timeout", None),
    (ACCOUNT, [REJECT, REJECT, REJECT, outcome("accept", 70.0)], "approval_outside_window", None),
    (ACCOUNT, [REJECT, REJECT, REJECT, outcome("accept", 0.01), outcome("accept", 3.0)], "ip_whitelist",
     ["unknown_user", "unknown_user_unsigned", "wrong_password", "account", "account_other_nas"]),
    (ACCOUNT, [REJECT, REJECT, REJECT, outcome("accept", 0.01), outcome("discard")], "ests_token_error", None),
    (ACCOUNT, [REJECT, REJECT, REJECT, outcome("accept", 0.01), outcome("accept", 0.01)], "accepted_without_mfa",
     None),
    (Facts(account=True, allow_push=True, account_eap=True), [REJECT, REJECT, REJECT,
                                                              outcome("reject", 0.02, primary=True, rounds=9)],
     "otp_user_over_eap", None),
    (Facts(account=True, allow_push=True, account_eap=True), [REJECT, REJECT, REJECT,
                                                              outcome("reject", 0.02, rounds=3)],
     "eap_method_failed", None),
    (Facts(account=True, allow_push=True, account_password=False), [REJECT, REJECT, outcome("discard")],
     "ests_token_error", ["unknown_user", "unknown_user_unsigned", "account"]),
])
def test_one_cause(facts: Facts, answers: list[Outcome], cause: str, keys: list[str] | None) -> None:
    d = play(facts, *answers)
    assert d.conclusion is not None
    assert d.conclusion.cause.code == cause
    if keys is not None:
        assert [t.step.key for t in d.trace] == keys
    assert d.conclusion.exit_code == CAUSES[cause].exit_code


def test_no_push_without_allow_push() -> None:
    """The right-password step is never handed to a driver without allow_push: it is recorded as skipped."""
    d = Diagnosis(Facts(account=True, allow_push=False))
    handed = []
    for o in (REJECT, REJECT, REJECT):
        step = d.next_step()
        assert step is not None
        handed.append(step)
        d.record(step, o)
    assert d.next_step() is None
    assert not any(s.pushes for s in handed)
    assert d.trace[-1].skipped and d.trace[-1].step.pushes
    assert d.conclusion is not None and d.conclusion.cause.code == "healthy"
    assert any("--allow-push" in n for n in d.conclusion.notes)


def test_silence_names_the_look_that_separates_what_remains() -> None:
    d = play(Facts(), outcome("discard"), outcome("discard"))
    c = d.conclusion
    assert c is not None
    assert [r.code for r in c.remaining] == ["wrong_secret_with_message_authenticator", "filtered"]
    assert c.separating_look is not None and "event 13" in c.separating_look and "event 18" in c.separating_look
    assert any("192.0.2.50" in e for e in c.evidence)  # the source address, to check against the client list
    assert "-Address 192.0.2.50" in d.render("t") and "-Address 192.0.2.50" in " ".join(d.to_dict("t")["cause"]["fix"])


def test_unsigned_replies_degrade_a_healthy_server_unless_allowed() -> None:
    unsigned = outcome("reject", signed=False)
    assert play(Facts(), unsigned, unsigned).conclusion.exit_code == EXIT_DEGRADED  # type: ignore[union-attr]
    assert play(Facts(allow_unsigned=True), unsigned, unsigned).conclusion.exit_code == EXIT_OK  # type: ignore[union-attr]


def test_ests_fix_names_both_service_principals_and_graph_powershell() -> None:
    d = play(ACCOUNT, REJECT, REJECT, REJECT, outcome("discard"))
    c = d.conclusion
    assert c is not None and c.exit_code == EXIT_FAILED
    fix = "\n".join(c.cause.fix)
    assert "981f26a1-7f43-403b-a875-f8b09b8cd720" in fix and "1f5530b3-261a-47a9-b357-ded261e17918" in fix
    assert "Update-MgServicePrincipal" in fix and "Restart-Service IAS" in fix and "Msol" not in fix
    doc = json.loads(json.dumps(d.to_dict("192.0.2.1:1812")))
    assert doc["cause"]["code"] == "ests_token_error" and doc["exit_code"] == EXIT_FAILED
    assert [s["key"] for s in doc["steps"]] == ["unknown_user", "unknown_user_unsigned", "wrong_password", "account"]
    assert "6274" in doc["cause"]["explanation"] and "reason 9" in doc["cause"]["explanation"]


def test_record_refuses_a_step_it_did_not_ask_for() -> None:
    d = Diagnosis(Facts())
    first = d.next_step()
    assert first is not None
    d.record(first, REJECT)
    with pytest.raises(RuntimeError):
        d.record(first, REJECT)


def test_catalogue_uses_graph_powershell_for_both_principals() -> None:
    """The catalogue's ESTS advice: Microsoft Graph PowerShell (MSOnline is retired), both service principals."""
    from probe.diagnosis import CATALOGUE

    text = " ".join(c for e in CATALOGUE.values() for c in e.checks)
    assert "Msol" not in text
    entry = CATALOGUE["nps_discard_after_primary_auth"]
    checks = " ".join(entry.checks)
    assert "Get-MgServicePrincipal" in checks and "Update-MgServicePrincipal" in checks
    assert "981f26a1-7f43-403b-a875-f8b09b8cd720" in checks and "1f5530b3-261a-47a9-b357-ded261e17918" in checks


def test_bare_eap_tls_is_flagged_outside_the_extensions_support() -> None:
    facts = Facts(account=True, allow_push=True, account_eap=True, account_password=False, outside_support=True)
    d = play(facts, REJECT, REJECT, outcome("accept", 3.0, primary=True, rounds=9))
    assert d.conclusion is not None and d.conclusion.cause.code == "healthy"
    assert any("outside Microsoft's documented support" in n for n in d.conclusion.notes)
    plain = play(Facts(account=True, allow_push=True), REJECT, REJECT, REJECT, outcome("accept", 3.0))
    assert not any("outside" in n for n in plain.conclusion.notes)  # type: ignore[union-attr]


def test_a_step_that_could_not_probe_ends_the_diagnosis_as_unknown() -> None:
    from probe.outcome import EXIT_UNKNOWN

    local = outcome("error", kind=ErrorKind.LOCAL, detail="cannot read alice.key")
    d = play(Facts(account=True, allow_push=True, account_password=False), REJECT, REJECT, local)
    assert d.conclusion is not None and d.conclusion.cause.code == "could_not_probe"
    assert d.conclusion.exit_code == EXIT_UNKNOWN and "alice.key" in d.conclusion.evidence[0]


@pytest.mark.parametrize(("facts", "answers", "cause"), [
    (ACCOUNT, [REJECT, REJECT, REJECT, outcome("discard")], "ests_token_error"),  # a timed-out push: reject or discard?
    (ACCOUNT, [REJECT, REJECT, REJECT, outcome("reject", 9.0)], "mfa_denied"),
    (ACCOUNT, [REJECT, REJECT, REJECT, outcome("challenge", 0.02)], "otp_challenge"),  # the prompt's wording
    (Facts(account=True, allow_push=True, nas_timeout_s=1.0), [REJECT, REJECT, REJECT, outcome("accept", 3.0)],
     "approval_slower_than_nas_timeout"),  # RRAS's retransmission schedule
    (ACCOUNT, [REJECT, REJECT, outcome("discard")], "wrong_password_unanswered"),  # no DC: discard?
    (Facts(account=True, allow_push=True, account_eap=True, account_password=False, outside_support=True),
     [REJECT, REJECT, outcome("accept", 3.0, primary=True, rounds=8)], "healthy"),  # bare EAP-TLS with MFA
])
def test_facts_marked_uncertain_in_the_notes_say_so(facts: Facts, answers: list[Outcome], cause: str) -> None:
    """PROTOCOL-NOTES marks some facts [?]: where a conclusion rests on one, the output says [?] too."""
    d = play(facts, *answers)
    assert d.conclusion is not None and d.conclusion.cause.code == cause
    assert "[?]" in d.render("t")
    doc = d.to_dict("t")
    assert "[?]" in json.dumps([doc["cause"], doc["notes"]])


def test_the_catalogue_names_the_cryptobinding_reasons() -> None:
    from probe.diagnosis import CATALOGUE

    reject = CATALOGUE["nps_reject_after_primary_auth"]
    assert any("reason 301" in c and "reason 302" in c for c in reject.causes)
    assert any("reason 301" in c and "302" in c for c in CATALOGUE["cryptobinding_invalid"].checks)


@pytest.mark.parametrize(("binding", "signs"), [("absent", 1), ("valid", 0)])
def test_a_peap_accept_without_cryptobinding_is_a_sign_of_another_server(binding: str, signs: int) -> None:
    facts = Facts(account=True, allow_push=True, account_eap=True, account_peap=True)
    accept = outcome("accept", 3.0, primary=True, rounds=9)
    accept.cryptobinding = binding  # type: ignore[assignment]
    d = play(facts, REJECT, REJECT, outcome("reject", rounds=8), accept)
    assert d.conclusion is not None and d.conclusion.cause.code == "healthy"
    assert len(d.not_nps) == signs and len(d.to_dict("t")["not_nps_signs"]) == signs
    assert ("may not be NPS" in d.render("t")) == bool(signs)


@pytest.mark.parametrize(("typing_s", "cause", "remaining"), [
    (0.01, "otp_rejected", ["otp_session_expired"]), (181.0, "otp_session_expired", [])])
def test_a_rejected_code_is_invalid_session_only_when_it_came_after_three_minutes(
        typing_s: float, cause: str, remaining: list[str]) -> None:
    from probe.outcome import AttemptRecord

    answer = outcome("reject", 0.02, rounds=2)
    answer.attempts = [AttemptRecord(1, 0.0, 0.01, "Access-Challenge"),
                       AttemptRecord(2, 0.01 + typing_s, 0.02 + typing_s, "Access-Reject")]
    d = play(Facts(account=True, allow_push=True, otp_given=True), REJECT, REJECT, REJECT, answer)
    assert d.conclusion is not None and d.conclusion.cause.code == cause
    assert [r.code for r in d.conclusion.remaining] == remaining
    assert f"the code sent {typing_s:.1f} s later" in d.conclusion.evidence[-1]
