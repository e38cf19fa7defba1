"""The one judge (probe.verdict) on constructed Outcomes: verdicts, degraded states, exit codes, diagnosis codes."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from probe.diagnosis import entry
from probe.model import Expectation
from probe.outcome import EXIT_DEGRADED, EXIT_FAILED, EXIT_OK, EXIT_UNKNOWN, ErrorKind, Outcome, finalize
from probe.verdict import BLAST_RADIUS, JudgeOptions, Judgement, certificate_states, diagnosis_codes, judge_outcome

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def outcome(**kw: Any) -> Outcome:
    """A signed PAP accept at 1 s of a 60 s window unless told otherwise."""
    base: dict[str, Any] = dict(target="nps:1812", method="pap", identity="alice", result="accept",
                                final_response_s=1.0, duration_s=1.0, window_s=60.0, message_authenticator="valid",
                                client_timeout_s=90.0)
    base.update(kw)
    return Outcome(**base)


def judge(o: Outcome, exp: Expectation | None = None, **opts: Any) -> Judgement:
    opts.setdefault("now", NOW)
    return judge_outcome(o, exp or Expectation(result=o.expected), JudgeOptions(**opts))


def codes(o: Outcome) -> list[str]:
    return [d["code"] for d in o.diagnosis]


def cert(days: float, subject: str | None = "CN=nps.lab.test") -> dict[str, Any]:
    c: dict[str, Any] = {"not_after": (NOW + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if subject is not None:
        c["subject"] = subject
    return c


# ---------------------------------------------------------------------------
# Verdicts and exit codes


def test_ok() -> None:
    o = outcome()
    j = judge(o)
    assert (j.exit_code, j.verdict, j.failures, j.degraded) == (EXIT_OK, "OK", (), ())
    assert o.within_window is True and o.expectation_met is True and o.degraded == [] and o.diagnosis == []
    assert o.exit_code == EXIT_OK and o.verdict == "OK"


def test_judgement_exit_code_is_the_outcomes() -> None:
    for o in (outcome(), outcome(result="reject"), outcome(final_response_s=50.0), outcome(error_kind="local")):
        j = judge(o)
        assert j.exit_code == o.exit_code


@pytest.mark.parametrize("final, within", [(60.0, True), (60.001, False), (59.9, True)])
def test_window_boundary(final: float, within: bool) -> None:
    o = outcome(final_response_s=final, duration_s=final)
    j = judge(o, slow_fraction=1.0)
    assert o.within_window is within
    assert j.exit_code == (EXIT_OK if within else EXIT_FAILED)
    if not within:
        assert j.failures == ("accept came outside the 60 s window (60.0 s)",)
        assert codes(o) == ["answer_outside_window"]


def test_answer_without_a_time_is_outside_the_window() -> None:
    o = outcome(final_response_s=None)
    j = judge(o)
    assert o.within_window is False and j.failures == ("accept came outside the 60 s window",)
    assert j.exit_code == EXIT_FAILED and o.diagnosis == []


def test_unanswered_results_are_never_within_the_window() -> None:
    for result in ("discard", "error"):
        o = outcome(result=result, final_response_s=1.0)
        judge(o)
        assert o.within_window is False


def test_late_answer_fails_with_the_client_timeout() -> None:
    o = outcome(final_response_s=40.0, late=True, client_timeout_s=30.0)
    j = judge(o)
    assert j.failures == ("accept came after 40.0 s, past the client's 30 s timeout",)
    assert j.exit_code == EXIT_FAILED and o.expectation_met is False
    assert diagnosis_codes(o, 0.75) == [("late_answer_beyond_client_timeout",
                                         "answered after 40.0 s, the client gives up after 30 s")]


def test_late_without_a_client_timeout_has_no_late_code() -> None:
    o = outcome(final_response_s=10.0, late=True, client_timeout_s=None)
    j = judge(o)
    assert "late_answer_beyond_client_timeout" not in codes(o)
    assert j.failures == ("accept came after 10.0 s, past the client's timeout",)
    o = outcome(final_response_s=None, late=True, client_timeout_s=30.0)
    j = judge(o)
    assert "late_answer_beyond_client_timeout" not in codes(o)
    assert j.failures == ("accept came, past the client's 30 s timeout",)


def test_wrong_result_names_the_first_diagnosis() -> None:
    o = outcome(result="reject")
    j = judge(o)
    assert j.failures == ("expected accept, got reject; access_reject",)
    assert j.exit_code == EXIT_FAILED and j.verdict == "FAILED" and o.expectation_met is False


def test_wrong_result_without_diagnosis() -> None:
    o = outcome(result="error", error_kind=None, final_response_s=None)
    j = judge(o)
    assert j.failures == ("expected accept, got error",)


def test_error_result_shows_kind_and_detail() -> None:
    o = outcome(result="error", error_kind="tls", error_detail="server certificate not trusted: x",
                final_response_s=None)
    j = judge(o)
    assert o.error_kind is ErrorKind.TLS
    assert j.failures == ("expected accept, got error (tls: server certificate not trusted: x); "
                          "server_certificate_untrusted",)
    assert j.exit_code == EXIT_FAILED


def test_mfa_not_enforced() -> None:
    o = outcome()
    j = judge(o, Expectation(result="reject"))
    assert o.expected == "reject"
    assert j.failures == ("expected reject, got accept; mfa_not_enforced",)
    assert codes(o) == ["mfa_not_enforced"]


def test_expected_reject_is_met() -> None:
    o = outcome(result="reject")
    j = judge(o, Expectation(result="reject"))
    assert j.exit_code == EXIT_OK and o.expectation_met


def test_challenge_expected_and_got() -> None:
    o = outcome(result="challenge", reply_message="Enter code")
    j = judge(o, Expectation(result="challenge"))
    assert j.exit_code == EXIT_OK
    assert diagnosis_codes(o, 0.75) == [("otp_challenge", "prompt: 'Enter code'")]


@pytest.mark.parametrize("result, late, code", [("discard", False, EXIT_OK), ("discard", True, EXIT_OK),
                                               ("accept", False, EXIT_FAILED), ("reject", False, EXIT_FAILED),
                                               ("error", False, EXIT_FAILED)])
def test_discard_expectation(result: str, late: bool, code: int) -> None:
    o = outcome(result=result, late=late, final_response_s=None if result == "discard" else 1.0)
    j = judge(o, Expectation(result="discard"))
    assert j.exit_code == code and o.expectation_met is (code == EXIT_OK)


def test_discard_when_accept_expected() -> None:
    o = outcome(result="discard", final_response_s=None)
    j = judge(o)
    assert j.failures == ("expected accept, got discard; no_reply",) and j.exit_code == EXIT_FAILED


# ---------------------------------------------------------------------------
# Degraded states


def test_slow_answer_is_degraded() -> None:
    o = outcome(final_response_s=46.0)
    j = judge(o)
    text = "slow answer: 46.0 s is over 75% of the 60 s window"
    assert (j.exit_code, j.verdict, j.failures, j.degraded) == (EXIT_DEGRADED, "DEGRADED", (), (text,))
    assert o.degraded == [text] and o.expectation_met is True
    assert diagnosis_codes(o, 0.75) == [("slow_answer", "46.0 s of a 60 s window")]


def test_slow_boundary_and_fraction() -> None:
    o = outcome(final_response_s=45.0)
    assert judge(o).exit_code == EXIT_OK and o.diagnosis == []
    o = outcome(final_response_s=31.0)
    j = judge(o, slow_fraction=0.5)
    assert j.degraded == ("slow answer: 31.0 s is over 50% of the 60 s window",)
    assert codes(o) == ["slow_answer"]


def test_slow_reject_that_was_expected_is_degraded() -> None:
    o = outcome(result="reject", final_response_s=50.0)
    assert judge(o, Expectation(result="reject")).exit_code == EXIT_DEGRADED


def test_slow_but_failed_is_failed_not_degraded() -> None:
    o = outcome(final_response_s=50.0)
    j = judge(o, Expectation(result="reject"))
    assert j.exit_code == EXIT_FAILED and j.degraded == () and o.degraded == []
    assert codes(o) == ["mfa_not_enforced", "slow_answer"]


def test_slow_answer_outside_window_is_not_slow() -> None:
    o = outcome(final_response_s=70.0)
    judge(o)
    assert codes(o) == ["answer_outside_window"] and o.degraded == []
    assert diagnosis_codes(o, 0.75) == [("answer_outside_window", "70.0 s against a 60 s window")]


def test_unsigned_replies_are_degraded_when_required() -> None:
    o = outcome(message_authenticator="absent")
    j = judge(o)
    assert (j.exit_code, j.degraded, j.failures) == (EXIT_DEGRADED, (BLAST_RADIUS,), ())
    assert o.degraded == [BLAST_RADIUS]
    assert o.diagnosis[-1]["code"] == "message_authenticator_absent"
    assert o.diagnosis[-1] == entry("message_authenticator_absent").render(None)  # no detail: the title alone


@pytest.mark.parametrize("ma, policy", [("absent", "optional"), ("valid", "required"), (None, "required")])
def test_signed_or_allowed_unsigned_is_ok(ma: str | None, policy: str) -> None:
    o = outcome(message_authenticator=ma)
    j = judge(o, Expectation(message_authenticator=policy))  # type: ignore[arg-type]  # the two policies
    assert j.exit_code == EXIT_OK and o.diagnosis == []


def test_unsigned_and_failed_keeps_the_state() -> None:
    o = outcome(result="reject", message_authenticator="absent")
    j = judge(o)
    assert j.exit_code == EXIT_FAILED and j.degraded == (BLAST_RADIUS,)
    assert codes(o) == ["access_reject", "message_authenticator_absent"]


def test_server_certificate_expiring_is_degraded() -> None:
    o = outcome(method="eap-tls", mppe="match", tls={"server_cert": cert(5.5)})
    j = judge(o)
    assert j.exit_code == EXIT_DEGRADED and len(j.degraded) == 1
    assert j.degraded[0].startswith("server certificate CN=nps.lab.test expires in 5 day(s) (")
    assert j.degraded[0].endswith("); renew it before it stops authentication")
    assert codes(o) == ["server_certificate_expiring"]
    assert "expires in 5 day(s)" in o.diagnosis[0]["text"]


def test_client_certificate_expired() -> None:
    c = cert(-2, subject=None)
    o = outcome(method="eap-tls", mppe="match", tls={"server_cert": cert(400), "client_cert": c})
    j = judge(o)
    assert j.degraded == (f"client certificate ? expired on {c['not_after']}",)
    assert codes(o) == ["client_certificate_expiring"]


@pytest.mark.parametrize("days, warn, degraded", [(30.0, 30, True), (30.5, 30, False), (5.5, 4, False),
                                                 (0.5, 0, False), (0.5, 1, True),
                                                 (-0.1, 0, True)])
def test_certificate_warn_days_boundary(days: float, warn: int, degraded: bool) -> None:
    o = outcome(method="eap-tls", mppe="match", tls={"server_cert": cert(days)})
    assert (judge(o, cert_warn_days=warn).exit_code == EXIT_DEGRADED) is degraded


def test_certificates_not_judged_without_warn_days() -> None:
    o = outcome(method="eap-tls", mppe="match", tls={"server_cert": cert(1)})
    assert judge(o, cert_warn_days=None).exit_code == EXIT_OK


@pytest.mark.parametrize("server_cert", [{}, {"not_after": ""}, {"not_after": "not a date"}, None])
def test_unreadable_certificate_dates_are_ignored(server_cert: dict[str, Any] | None) -> None:
    o = outcome(method="eap-tls", mppe="match", tls={"server_cert": server_cert})
    assert judge(o).exit_code == EXIT_OK and o.degraded == []


def test_certificate_states_both_and_order() -> None:
    o = outcome(method="eap-tls", tls={"client_cert": cert(3, "CN=c"), "server_cert": cert(2, "CN=s")})
    states = certificate_states(o, 30, NOW)
    assert [code for code, _ in states] == ["server_certificate_expiring", "client_certificate_expiring"]
    assert states[0][1].startswith("server certificate CN=s expires in 2 day(s)")
    assert certificate_states(outcome(tls=None), 30, NOW) == []


def test_certificate_default_now_is_the_time_of_judging() -> None:
    o = outcome(method="eap-tls", mppe="match", tls={"server_cert": {"not_after": "2000-01-01T00:00:00Z"}})
    j = judge_outcome(o, Expectation(), JudgeOptions())
    assert j.degraded == ("server certificate ? expired on 2000-01-01T00:00:00Z",)


def test_every_degraded_state_at_once_in_order() -> None:
    o = outcome(method="eap-tls", mppe="match", final_response_s=50.0, message_authenticator="absent",
                tls={"server_cert": cert(3)})
    j = judge(o)
    assert j.exit_code == EXIT_DEGRADED and len(j.degraded) == 3
    assert j.degraded[0].startswith("slow answer") and j.degraded[2] == BLAST_RADIUS
    assert codes(o) == ["slow_answer", "server_certificate_expiring", "message_authenticator_absent"]


# ---------------------------------------------------------------------------
# Could not probe: exit 3


@pytest.mark.parametrize("kind", ["local", "internal", ErrorKind.LOCAL, ErrorKind.INTERNAL])
def test_could_not_probe_is_unknown(kind: str) -> None:
    o = outcome(result="error", error_kind=kind, error_detail="boom", final_response_s=None,
                message_authenticator="absent", method="eap-tls", tls={"server_cert": cert(1)})
    j = judge(o)
    assert (j.exit_code, j.verdict, j.failures, j.degraded) == (EXIT_UNKNOWN, "UNKNOWN", ("could not probe: boom",), ())
    assert o.exit_code == EXIT_UNKNOWN and o.expectation_met is False and o.degraded == []
    assert o.could_not_probe


def test_internal_error_has_its_diagnosis_local_has_none() -> None:
    o = outcome(result="error", error_kind="internal", error_detail="RuntimeError: x", final_response_s=None)
    judge(o)
    assert codes(o) == ["internal_error"]
    o = outcome(result="error", error_kind="local", error_detail="no file", final_response_s=None)
    judge(o)
    assert codes(o) == []


def test_could_not_probe_wins_over_a_met_expectation() -> None:
    o = outcome(error_kind="local", error_detail="x")  # an accept, yet the probe could not finish its work
    assert judge(o).exit_code == EXIT_UNKNOWN


def test_error_kinds_are_coerced() -> None:
    o = outcome(result="error", error_kind="bad_authenticator", final_response_s=None)
    judge(o)
    assert o.error_kind is ErrorKind.BAD_AUTHENTICATOR and codes(o) == ["bad_authenticator"]
    o = outcome(result="error", error_kind="no-such-kind", final_response_s=None)
    j = judge(o)
    assert o.error_kind is ErrorKind.INTERNAL and j.exit_code == EXIT_UNKNOWN
    assert ErrorKind.coerce(None) is None and ErrorKind.coerce(ErrorKind.TLS) is ErrorKind.TLS


def test_error_kind_serializes_as_its_string() -> None:
    o = outcome(result="error", error_kind=ErrorKind.UNREACHABLE, final_response_s=None)
    judge(o)
    assert o.to_dict()["error_kind"] == "unreachable" and '"error_kind": "unreachable"' in o.to_json()
    assert o.to_dict()["error_state"] is None


# ---------------------------------------------------------------------------
# The check's own expectations


def test_within_bound() -> None:
    o = outcome(duration_s=2.5)
    j = judge(o, Expectation(within_s=2.0))
    assert j.failures == ("answered in 2.500 s, expected within 2 s",) and j.exit_code == EXIT_FAILED
    assert o.expectation_met is False
    assert judge(outcome(duration_s=2.0), Expectation(within_s=2.0)).exit_code == EXIT_OK


def test_reply_message() -> None:
    o = outcome(reply_message="Welcome alice")
    assert judge(o, Expectation(reply_message=re.compile("^Welcome"))).exit_code == EXIT_OK
    o = outcome(reply_message="Denied")
    j = judge(o, Expectation(reply_message=re.compile("^Welcome")))
    assert j.failures == ("Reply-Message 'Denied' does not match /^Welcome/",)
    o = outcome(reply_message=None)
    assert judge(o, Expectation(reply_message=re.compile("^$"))).exit_code == EXIT_OK
    j = judge(outcome(reply_message=None), Expectation(reply_message=re.compile("x")))
    assert j.failures == ("Reply-Message None does not match /x/",)


def test_attributes() -> None:
    exp = Expectation(attributes={"Class": ["group-a"], "Session-Timeout": ["3600"]})
    o = outcome(reply_attributes={"Class": [b"group-a"], "Session-Timeout": [3600]})
    assert judge(o, exp).exit_code == EXIT_OK
    o = outcome(reply_attributes={"Class": [b"group-b", b"\x00\x01"]})
    j = judge(o, exp)
    assert j.failures == ("Class: expected 'group-a', got 'group-b', 0x0001",
                          "Session-Timeout: expected '3600', got nothing")
    assert j.exit_code == EXIT_FAILED and o.expectation_met is False


def test_attribute_that_does_not_encode_never_matches() -> None:
    exp = Expectation(attributes={"Session-Timeout": ["soon"]})
    o = outcome(reply_attributes={"Session-Timeout": [object()]})
    j = judge(o, exp)
    assert j.failures[0].startswith("Session-Timeout: expected 'soon', got <object")


def test_check_failures_only_when_the_answer_is_right() -> None:
    o = outcome(result="reject", reply_message="Denied")
    j = judge(o, Expectation(reply_message=re.compile("^Welcome"), within_s=0.1))
    assert j.failures == ("expected accept, got reject; access_reject",)


# ---------------------------------------------------------------------------
# Judged once, by assignment


def test_judging_again_replaces_instead_of_appending() -> None:
    o = outcome(final_response_s=50.0, message_authenticator="absent")
    first = judge(o)
    diagnosis, degraded = list(o.diagnosis), list(o.degraded)
    second = judge(o)
    assert first == second and o.diagnosis == diagnosis and o.degraded == degraded
    third = judge(o, Expectation(message_authenticator="optional"), slow_fraction=0.9)
    assert third.exit_code == EXIT_OK and o.degraded == [] and o.diagnosis == []


def test_finalize_is_the_judge_without_check_options() -> None:
    o = outcome(final_response_s=50.0, message_authenticator="absent", method="eap-tls", mppe="match",
                tls={"server_cert": cert(1)})
    assert finalize(o, slow_fraction=0.9) is o
    assert o.exit_code == EXIT_OK and o.degraded == []  # certificates and signatures are the front door's options
    finalize(o)
    assert o.exit_code == EXIT_DEGRADED and codes(o) == ["slow_answer"]


# ---------------------------------------------------------------------------
# Diagnosis codes, branch by branch


@pytest.mark.parametrize("kw, expected", [
    (dict(result="discard", primary_auth_done=True, round_trips=2), [("nps_discard_after_primary_auth", None)]),
    (dict(result="discard", method="peap-mschapv2", round_trips=3),
     [("eap_stalled", "unanswered after 2 answered round(s)")]),
    (dict(result="discard", method="peap-mschapv2", round_trips=2),
     [("eap_stalled", "unanswered after 1 answered round(s)")]),
    (dict(result="discard", method="peap-mschapv2", round_trips=1), [("no_reply", None)]),
    (dict(result="discard", method="pap", round_trips=3), [("no_reply", None)]),
    (dict(result="reject", method="peap-mschapv2", primary_auth_done=True, reply_message="Denied"),
     [("nps_reject_after_primary_auth", "Reply-Message: 'Denied'")]),
    # PAP's first factor is done only when our OTP answered the server's challenge: a wrong code, not a denied push
    (dict(result="reject", method="pap", primary_auth_done=True, reply_message="Denied"),
     [("otp_rejected", "Reply-Message: 'Denied'")]),
    (dict(result="reject", method="eap-tls", tls=None, eap_detail="EAP-Failure"),
     [("server_refused_tls", "EAP-Failure")]),
    (dict(result="reject", method="eap-tls", tls={"server_cert": None}), [("server_refused_tls", None)]),
    (dict(result="reject", method="eap-tls", tls={"server_cert": {"subject": "x"}}),
     [("client_certificate_rejected", None)]),
    (dict(result="reject", method="peap-tls", tls={"server_cert": {"subject": "x"}}),
     [("client_certificate_rejected", None)]),
    (dict(result="reject", method="peap-mschapv2", tls={"server_cert": {"subject": "x"}},
          eap_detail="MS-CHAPv2 failure", reply_message="no"),
     [("eap_credentials_rejected", "MS-CHAPv2 failure; Reply-Message: 'no'")]),
    (dict(result="reject", method="eap-tls", tls={"server_cert": {"subject": "x"}},
          eap_detail="TLS server sent alert: handshake failure"),
     [("server_refused_tls", "TLS server sent alert: handshake failure")]),
    (dict(result="reject", method="eap-tls", tls={"server_cert": {"subject": "x"}},
          eap_detail="TLS server sent alert: Certificate Expired"),
     [("client_certificate_rejected", "TLS server sent alert: Certificate Expired")]),
    (dict(result="reject", method="eap-tls", tls={"server_cert": {"subject": "x"}},
          eap_detail="server sent alert: unknown CA"), [("client_certificate_rejected", "server sent alert: unknown CA")]),
    (dict(result="reject", method="eap-tls", tls={"server_cert": {"subject": "x"}},
          eap_detail="server sent alert: access denied"),
     [("client_certificate_rejected", "server sent alert: access denied")]),
    (dict(result="reject", method="eap-tls", tls={"server_cert": {"subject": "x"}}, eap_detail="Result TLV Failure"),
     [("client_certificate_rejected", "Result TLV Failure")]),
    (dict(result="reject", method="pap", tls=None), [("access_reject", None)]),
    (dict(result="reject", method="chap"), [("access_reject", None)]),
    (dict(result="challenge"), [("otp_challenge", None)]),
    (dict(result="error", error_kind="unreachable", error_detail="ICMP", final_response_s=None),
     [("port_unreachable", "ICMP")]),
    (dict(result="error", error_kind="mschapv2", error_detail="server failed to prove it", final_response_s=None),
     [("mschapv2_server_proof_failed", "server failed to prove it")]),
    (dict(result="error", error_kind=None, final_response_s=None), []),
    (dict(result="accept", method="peap-mschapv2", mppe="absent"), [("mppe_absent", None)]),
    (dict(result="accept", method="eap-tls", mppe="match"), []),
    (dict(result="accept", method="pap", mppe="absent"), []),
    (dict(result="accept", method="chap", mppe="absent"), []),
])
def test_diagnosis_codes(kw: dict[str, Any], expected: list[tuple[str, str | None]]) -> None:
    o = outcome(**kw)
    judge(o)
    assert diagnosis_codes(o, 0.75) == expected
    assert codes(o) == [code for code, _ in expected]


def test_mfa_not_enforced_only_for_an_accept() -> None:
    o = outcome(result="reject", expected="reject")
    judge(o, Expectation(result="reject"))
    assert "mfa_not_enforced" not in codes(o)


def test_reject_detail_is_rendered_into_the_text() -> None:
    o = outcome(result="reject", reply_message="Denied by policy")
    judge(o)
    assert "(Reply-Message: 'Denied by policy')" in o.diagnosis[0]["text"]


def test_defaults_are_the_command_lines() -> None:
    o = outcome(method="eap-tls", mppe="match", tls={"server_cert": cert(30.5)})
    assert judge(o).exit_code == EXIT_OK  # the default warns 30 days ahead, not 31
    o = outcome(method="eap-tls", mppe="match", tls={"server_cert": cert(29.5)})
    assert judge(o).exit_code == EXIT_DEGRADED
    assert JudgeOptions().cert_warn_days == 30 and JudgeOptions().slow_fraction == 0.75


def test_blast_radius_text_names_the_fix() -> None:
    assert "Blast-RADIUS" in BLAST_RADIUS and "CVE-2024-3596" in BLAST_RADIUS and "KB5040268" in BLAST_RADIUS


def test_options_and_judgements_are_values() -> None:
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        JudgeOptions().slow_fraction = 0.5  # type: ignore[misc]  # frozen on purpose
    with pytest.raises(dataclasses.FrozenInstanceError):
        judge(outcome()).exit_code = 3  # type: ignore[misc]  # frozen on purpose


def test_undecodable_attribute_bytes_are_shown_safely() -> None:
    o = outcome(reply_attributes={"Class": [b"\xff"]})
    j = judge(o, Expectation(attributes={"Class": ["a"]}))
    assert j.failures == ("Class: expected 'a', got '\ufffd'",)


def test_server_refused_tls_is_a_bool() -> None:
    from probe.verdict import _server_refused_tls

    assert _server_refused_tls(outcome(method="eap-tls", tls={"server_cert": {"subject": "x"}})) is False
    assert _server_refused_tls(outcome(method="eap-tls", tls=None)) is True
