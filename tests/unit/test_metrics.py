"""Metric names, labels, buckets and values (metrics.py), target policy and health (exporter, scheduler).

Outcomes are built and finalized as the conversation builds them, checks come
from a real probe file, and expositions are read back with prometheus_client's
own parser, so every assertion is on what a scrape would see.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from probe.checks import CheckResult, RunOptions, evaluate
from probe.config import Check, load_probe_files
from probe.model import Secret
from probe.exporter import TargetPolicy, shortened
from probe.metrics import CHECK_LABELS, RESPONSE_BUCKETS, CheckMetrics, one_shot_registry, probe_registry
from probe.outcome import Outcome, finalize
from probe.radius.transport import RetryPolicy
from probe.scheduler import CheckState, same_check

SECRET = "metrics-secret-never-shown"
PASSWORD = "metrics-password-never-shown"
# The names ../shared/DESIGN.md lists under "Contract: metrics".
CONTRACT = ("radius_probe_checks_total", "radius_probe_response_seconds", "radius_probe_mfa_window_margin_seconds",
            "radius_probe_server_cert_not_after_timestamp_seconds", "radius_probe_message_authenticator_present",
            "radius_probe_last_check_timestamp_seconds")


@pytest.fixture()
def checks(tmp_path: Path) -> list[Check]:
    (tmp_path / "nps.secret").write_text(SECRET + "\n")
    (tmp_path / "user.pw").write_text(PASSWORD + "\n")
    path = tmp_path / "probe.yaml"
    path.write_text(textwrap.dedent("""\
        modules:
          push: {method: pap, identity: alice, password_file: user.pw}
          canary: {method: pap, identity: erin, password_file: user.pw, timeout: 5, retries: 2, window: 60}
        targets:
          nps1: {address: "127.0.0.1:11812", secret_file: nps.secret}
          nps2: {address: "127.0.0.1:11813", secret_file: nps.secret}
        checks:
          - {name: push, targets: "*", module: push, interval: 30}
          - {name: canary, target: nps1, module: canary, expect: {result: reject}, interval: 60}
        """))
    return load_probe_files([str(path)])


def outcome(check: Check, result: str, final_s: float | None, **kw: object) -> Outcome:
    method = str(kw.pop("method", "pap"))
    o = Outcome(target=check.target.address, method=method, identity=check.module.identity,
                result=result, expected=check.expect.result, final_response_s=final_s,
                duration_s=(final_s or 1.0) + 0.01, round_trips=1, window_s=check.module.window_s,
                client_timeout_s=check.module.policy.client_deadline_s)
    for key, value in kw.items():
        setattr(o, key, value)
    return finalize(o)


def result_of(check: Check, o: Outcome) -> CheckResult:
    return evaluate(check, o, RunOptions())


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, as a scrape parses it: (name, sorted labels) -> value."""
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(all_samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return all_samples[(name, tuple(sorted(labels.items())))]


def unix(year: int, month: int, day: int) -> float:
    return datetime(year, month, day, tzinfo=timezone.utc).timestamp()


def keyed(check: Check) -> dict[str, str]:
    return dict(zip(CHECK_LABELS, (check.name, check.target.name, check.module.name)))


def test_contract_names_labels_and_values(checks: list[Check]) -> None:
    push = checks[0]
    registry = CollectorRegistry()
    m = CheckMetrics(registry)
    m.configure(checks)
    tls = {"server_cert": {"not_after": "2040-01-01T00:00:00Z"}, "client_cert": {"not_after": "2039-12-01T00:00:00Z"}}
    m.observe(result_of(push, outcome(push, "accept", 2.5, message_authenticator="valid", tls=tls,
                                      retransmissions=2, method="peap-tls")), finished_at=1_800_000_000.0)
    got = samples(registry)
    names = {name for name, _ in got}
    for contract in CONTRACT:
        assert any(n == contract or n.startswith(contract + "_") for n in names), contract
    k = keyed(push)
    assert value(got, "radius_probe_checks_total", **k, result="accept") == 1
    assert value(got, "radius_probe_checks_total", **k, result="discard") == 0  # declared at zero for rate()
    assert value(got, "radius_probe_mfa_window_margin_seconds", **k) == pytest.approx(57.5)
    assert value(got, "radius_probe_mfa_window_seconds", **k) == 60
    assert value(got, "radius_probe_server_cert_not_after_timestamp_seconds", **k) == unix(2040, 1, 1)
    assert value(got, "radius_probe_client_cert_not_after_timestamp_seconds", **k) == unix(2039, 12, 1)
    assert value(got, "radius_probe_message_authenticator_present", **k) == 1
    assert value(got, "radius_probe_last_check_timestamp_seconds", **k) == 1_800_000_000
    assert value(got, "radius_probe_round_trips", **k) == 1
    assert value(got, "radius_probe_retransmissions_total", **k) == 2
    assert value(got, "radius_probe_expectation_met", **k) == 1
    assert value(got, "radius_probe_check_verdict", **k) == 0
    assert value(got, "radius_probe_check_interval_seconds", **k) == 30
    assert value(got, "radius_probe_check_info", **k, method="pap", address="127.0.0.1:11812", expected="accept") == 1
    assert value(got, "radius_probe_response_seconds_bucket", **k, le="2.5") == 1
    assert value(got, "radius_probe_response_seconds_bucket", **k, le="1.0") == 0
    text = generate_latest(registry).decode()
    assert SECRET not in text and PASSWORD not in text


def test_buckets_reach_past_the_window_and_a_late_answer_is_a_breach(checks: list[Check]) -> None:
    assert max(RESPONSE_BUCKETS) >= 120 and 60.0 in RESPONSE_BUCKETS and 5.0 in RESPONSE_BUCKETS
    push = checks[0]
    registry = CollectorRegistry()
    m = CheckMetrics(registry)
    m.configure(checks)
    slow = result_of(push, outcome(push, "accept", 65.0, message_authenticator="absent"))
    assert slow.verdict == "FAILED"
    m.observe(slow)
    got = samples(registry)
    k = keyed(push)
    assert value(got, "radius_probe_response_seconds_bucket", **k, le="60.0") == 0
    assert value(got, "radius_probe_response_seconds_bucket", **k, le="75.0") == 1
    assert value(got, "radius_probe_mfa_window_margin_seconds", **k) == pytest.approx(-5.0)
    assert value(got, "radius_probe_window_breaches_total", **k) == 1
    assert value(got, "radius_probe_message_authenticator_present", **k) == 0
    assert value(got, "radius_probe_expectation_met", **k) == 0
    assert value(got, "radius_probe_check_verdict", **k) == 2


def test_a_discard_has_no_response_time_and_no_margin(checks: list[Check]) -> None:
    push = checks[0]
    registry = CollectorRegistry()
    m = CheckMetrics(registry)
    m.configure(checks)
    m.observe(result_of(push, outcome(push, "accept", 0.2, message_authenticator="valid")))
    m.observe(result_of(push, outcome(push, "discard", None, retransmissions=2)))
    got = samples(registry)
    k = keyed(push)
    assert value(got, "radius_probe_checks_total", **k, result="discard") == 1
    assert value(got, "radius_probe_response_seconds_count", **k) == 1  # only the accept
    assert math.isnan(value(got, "radius_probe_mfa_window_margin_seconds", **k))
    assert value(got, "radius_probe_message_authenticator_present", **k) == 1  # the last reply seen was signed
    assert value(got, "radius_probe_window_breaches_total", **k) == 0
    assert value(got, "radius_probe_check_verdict", **k) == 2


def test_expected_reject_is_met_and_a_pap_run_drops_certificate_series(checks: list[Check]) -> None:
    canary = checks[2]
    registry = CollectorRegistry()
    m = CheckMetrics(registry)
    m.configure(checks)
    tls = {"server_cert": {"not_after": "2040-01-01T00:00:00Z"}}
    m.observe(result_of(canary, outcome(canary, "reject", 0.1, tls=tls, message_authenticator="valid")))
    k = keyed(canary)
    assert value(samples(registry), "radius_probe_server_cert_not_after_timestamp_seconds", **k) == unix(2040, 1, 1)
    m.observe(result_of(canary, outcome(canary, "reject", 0.1, message_authenticator="valid")))
    got = samples(registry)
    assert ("radius_probe_server_cert_not_after_timestamp_seconds", tuple(sorted(k.items()))) not in got
    assert value(got, "radius_probe_expectation_met", **k) == 1


def test_reconfigure_drops_removed_checks_and_keeps_the_others(checks: list[Check]) -> None:
    registry = CollectorRegistry()
    m = CheckMetrics(registry)
    m.configure(checks)
    push_nps1 = checks[0]
    m.observe(result_of(push_nps1, outcome(push_nps1, "accept", 0.1)))
    m.configure(checks[:2])  # the canary is gone after a reload
    got = samples(registry)
    assert not any(dict(labels).get("check") == "canary" for _, labels in got)
    assert value(got, "radius_probe_checks_total", **keyed(push_nps1), result="accept") == 1


def test_one_shot_registry_has_the_run_and_no_process_metrics(checks: list[Check]) -> None:
    push = checks[0]
    registry = one_shot_registry([result_of(push, outcome(push, "accept", 0.3))], finished_at=1_800_000_000.0)
    got = samples(registry)
    assert value(got, "radius_probe_checks_total", **keyed(push), result="accept") == 1
    assert value(got, "radius_probe_last_check_timestamp_seconds", **keyed(push)) == 1_800_000_000
    assert not any(name.startswith(("process_", "python_")) for name, _ in got)
    assert not any(name.endswith("_created") for name, _ in got)


def test_probe_registry_blackbox_answer(checks: list[Check]) -> None:
    push = checks[0]
    ok = samples(probe_registry(result_of(push, outcome(push, "accept", 1.5, message_authenticator="absent")), 1.6))
    assert ok[("probe_success", ())] == 1
    assert ok[("probe_duration_seconds", ())] == pytest.approx(1.6)
    assert ok[("probe_radius_result", (("result", "accept"),))] == 1
    assert ok[("probe_radius_result", (("result", "discard"),))] == 0
    assert ok[("probe_radius_final_response_seconds", ())] == pytest.approx(1.5)
    assert ok[("probe_radius_message_authenticator_present", ())] == 0
    assert ("probe_radius_mppe_match", ()) not in ok  # PAP has no keys to compare
    lost = samples(probe_registry(result_of(push, outcome(push, "discard", None)), 1.0))
    assert lost[("probe_success", ())] == 0
    assert ("probe_radius_final_response_seconds", ()) not in lost
    assert ("probe_radius_mfa_window_margin_seconds", ()) not in lost
    peap = samples(probe_registry(result_of(push, outcome(push, "accept", 0.5, method="peap-tls", mppe="match",
                                                          cryptobinding="valid")), 0.6))
    assert peap[("probe_radius_mppe_match", ())] == 1
    assert peap[("probe_radius_cryptobinding_valid", ())] == 1


def test_target_policy_only_named_or_allowed(checks: list[Check]) -> None:
    known = {c.target.name: c.target for c in checks}
    closed = TargetPolicy()
    assert closed.target("nps1", known) is known["nps1"]
    assert closed.target("127.0.0.1:11813", known) is known["nps2"]  # by its address
    refused = closed.target("127.0.0.1:1812", known)
    assert isinstance(refused, str) and "nothing was sent" in refused
    assert isinstance(closed.target("not a host:x", known), str)
    secret = Secret(b"pattern-secret")
    policy = TargetPolicy(("nps*.contoso.com:1812", "10.1.*", "192.0.2.0/28", "[2001:db8::*]:1812"), secret)
    allowed = policy.target("nps7.contoso.com", known)
    assert not isinstance(allowed, str) and (allowed.host, allowed.port) == ("nps7.contoso.com", 1812)
    assert allowed.secret is secret
    assert not isinstance(policy.target("10.1.2.3:11812", known), str)  # host glob: any port
    assert not isinstance(policy.target("192.0.2.14:1645", known), str)  # CIDR
    assert not isinstance(policy.target("[2001:db8::5]:1812", known), str)
    for wanted in ("nps7.contoso.com:1645", "evil.example:1812", "192.0.2.16", "10.2.0.1", "[2001:db8::5]:1645"):
        assert isinstance(policy.target(wanted, known), str), wanted
    no_secret = TargetPolicy(("10.1.*",), None).target("10.1.2.3", known)
    assert isinstance(no_secret, str) and "--secret-file" in no_secret
    assert SECRET not in repr(policy) and "pattern-secret" not in repr(policy)


def test_scrape_timeout_shortens_every_wait(checks: list[Check]) -> None:
    canary = checks[2].module  # 5 s x 3 transmissions, listens 90 s
    cut = shortened(canary, 1.5)
    assert cut.policy.listen_until_s == pytest.approx(1.5)
    assert cut.policy.retries == canary.policy.retries
    assert cut.policy.client_deadline_s <= 1.5
    assert shortened(canary, None) is canary
    assert shortened(canary, 1000) is canary
    assert cut.policy.total_deadline_s == pytest.approx(1.5)


def test_scrape_timeout_keeps_a_shorter_deadline_and_cuts_a_longer_one(checks: list[Check]) -> None:
    canary = checks[2].module
    capped = replace(canary, policy=replace(canary.policy, deadline_s=0.8))  # serve --deadline 0.8
    assert shortened(capped, 1.5).policy.total_deadline_s == pytest.approx(0.8)
    quick = replace(canary, policy=RetryPolicy(timeout_s=0.2, retries=0, deadline_s=30.0))  # waits 0.2 s a round
    cut = shortened(quick, 1.5).policy
    assert cut.total_deadline_s == pytest.approx(1.5) and cut.listen_until_s == pytest.approx(0.2)


def test_health_needs_a_fresh_result_that_met_its_expectation(checks: list[Check]) -> None:
    push = checks[0]
    state = CheckState(push)
    ok, why = state.health(now_mono=100.0)
    assert not ok and why.startswith("NO RESULT push@nps1")
    state.last, state.finished_mono = result_of(push, outcome(push, "accept", 0.25)), 100.0
    ok, why = state.health(now_mono=101.0)
    assert ok and why.startswith("OK push@nps1: accept in 0.250 s")
    # 2 x 30 s interval + the 90 s listen: stale after 150 s
    assert state.max_age_s == pytest.approx(150.0)
    ok, why = state.health(now_mono=100.0 + 151)
    assert not ok and why.startswith("STALE push@nps1")
    state.last = result_of(push, outcome(push, "discard", None))
    ok, why = state.health(now_mono=101.0)
    assert not ok and why.startswith("FAILED push@nps1: expected accept, got discard")


def test_moving_a_check_in_its_file_is_not_a_change(checks: list[Check]) -> None:
    from dataclasses import replace

    push = checks[0]
    assert same_check(push, replace(push, line=push.line + 3))
    assert not same_check(push, replace(push, interval_s=5.0))
