"""A failed or degraded check explains its failing expectation first (issue 12, item 4).

The first diagnosis entry of a FAILED check whose answer was the expected kind is the expectation
that failed (a Class mismatch), before general advice (Blast-RADIUS); a DEGRADED check whose
expectation was the OTP challenge names what degraded it, never the challenge it expected; the
Nagios line says the same.
"""

from __future__ import annotations

from probe.checks import CheckResult
from probe.model import Check, Expectation, Module, Secret, Target
from probe.outcome import Outcome
from probe.report import nagios
from probe.verdict import JudgeOptions, judge_outcome


def _answer(result: str, **attrs: list[object]) -> Outcome:
    o = Outcome(target="127.0.0.1:1812", method="pap", identity="alice")
    o.result = result  # type: ignore[assignment]
    o.final_response_s = o.duration_s = 0.2
    o.message_authenticator = "absent"
    o.reply_attributes = dict(attrs)
    return o


def _result(o: Outcome, expect: Expectation) -> CheckResult:
    judged = judge_outcome(o, expect, JudgeOptions(cert_warn_days=None))
    target = Target("lab", "127.0.0.1:1812", "127.0.0.1", 1812, Secret(b"s"))
    check = Check("c", target, Module(name="m", method="pap", identity="alice"), expect)
    return CheckResult(check, o, list(judged.failures), list(judged.degraded))


def test_class_mismatch_is_said_before_blast_radius_advice() -> None:
    r = _result(_answer("accept", Class=[b"grp-other"]), Expectation(result="accept", attributes={"Class": ["grp-vpn"]}))
    assert r.verdict == "FAILED"
    codes = [d["code"] for d in r.outcome.diagnosis]
    assert codes[0] == "expectation_unmet" and "message_authenticator_absent" in codes[1:]
    assert "Class: expected 'grp-vpn'" in str(r.outcome.diagnosis[0]["text"])
    line = nagios([r], 2, 0.75).splitlines()[0]
    assert "c@lab FAILED (Class: expected 'grp-vpn', got 'grp-other')" in line


def test_expected_otp_challenge_is_not_named_as_the_degradation() -> None:
    r = _result(_answer("challenge"), Expectation(result="challenge"))
    assert r.verdict == "DEGRADED"
    assert r.outcome.diagnosis[0]["code"] == "message_authenticator_absent"
    line = nagios([r], 1, 0.75).splitlines()[0]
    assert "DEGRADED (message_authenticator_absent)" in line and "otp_challenge" not in line


def test_an_unexpected_answer_still_leads_with_its_own_code() -> None:
    r = _result(_answer("challenge"), Expectation(result="accept"))
    assert r.verdict == "FAILED" and r.outcome.diagnosis[0]["code"] == "otp_challenge"
