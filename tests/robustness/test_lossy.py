"""Packet loss, duplication, reordering and delay between the probe and a real server.

Bound: about 60 s on one core.  A lossy UDP proxy on 127.0.0.1 (tests/robustness/hostile.py,
seeded, deterministic rules) sits in front of FreeRADIUS (tests/servers/freeradius.py) and in
front of the emulator, for PAP, PEAP-MSCHAPv2 and EAP-TLS.  Where retransmission can recover
the probe must get its accept, with exactly as many retransmissions as copies were lost;
where it cannot (every copy dropped, no retries, or a server that drops retransmissions as
duplicates, as NPS and so the emulator do once a request was answered) it must classify a
discard with the retransmissions its policy allows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from probe.checks import RunOptions, run_check
from probe.pki import Pki
from probe.radius.transport import RetryPolicy
from tests.servers.freeradius import EapConfig, FreeRadiusServer, User, freeradius_available

from .conftest import DEFAULT_PASSWORD, DEFAULT_SECRET, assert_bounded, make_check
from .hostile import LossyProxy, Rule

# Rules that lose the first copy of every round need the whole conversation to fit: helper A's overall
# deadline defaults to timeout x (retries + 1) plus the late wait, so listen_s is generous here.
RECOVER = RetryPolicy(timeout_s=0.4, retries=2, listen_s=8.0)  # 0.4 s: room for a loaded CI machine
PATIENT = RetryPolicy(timeout_s=1.0, retries=2, listen_s=6.0)  # delays and reordering well under one timeout
LOSSY = RetryPolicy(timeout_s=0.4, retries=5, listen_s=12.0)  # seeded random loss: up to 5 copies lost a round
GIVE_UP = RetryPolicy(timeout_s=0.2, retries=2, listen_s=0.8)
NO_RETRY = RetryPolicy(timeout_s=0.3, retries=0, listen_s=0.6)
METHODS = ("pap", "peap-mschapv2", "eap-tls")


@dataclass(frozen=True)
class Scenario:
    name: str
    request: Rule
    reply: Rule
    policy: RetryPolicy
    result: str  # the classification on FreeRADIUS (which resends its cached reply to a retransmission)
    emulator_result: str | None = None  # when the emulator (NPS: duplicates dropped) must differ
    retransmissions: str = "dropped"  # "dropped": == requests dropped; "rounds": == round trips; a number
    emulator_policy: RetryPolicy | None = None  # a shorter wait where the emulator's answer is a discard


SCENARIOS = [
    Scenario("clean", Rule(), Rule(), RECOVER, "accept", retransmissions="0"),
    Scenario("drop_first_request", Rule(drop_first=True), Rule(), RECOVER, "accept", retransmissions="rounds"),
    # the reply is lost: FreeRADIUS answers the retransmission from its cache; NPS (the emulator) drops a
    # retransmission of an answered request as a duplicate, so nothing can recover it
    Scenario("drop_first_reply", Rule(), Rule(drop_first=True), RECOVER, "accept", emulator_result="discard",
             retransmissions="rounds", emulator_policy=RetryPolicy(timeout_s=0.3, retries=2, listen_s=1.0)),
    Scenario("duplicate_replies", Rule(), Rule(duplicate=2), RECOVER, "accept", retransmissions="0"),
    Scenario("duplicate_requests", Rule(duplicate=1), Rule(), PATIENT, "accept", retransmissions="0"),
    Scenario("delay_0.2s", Rule(), Rule(delay_s=0.2), PATIENT, "accept", retransmissions="0"),
    Scenario("reorder_requests", Rule(reorder=True), Rule(), PATIENT, "accept", retransmissions="0"),
    Scenario("random_loss_15pct_requests", Rule(loss=0.15), Rule(), LOSSY, "accept"),
    Scenario("drop_all_requests", Rule(drop_all=True), Rule(), GIVE_UP, "discard", retransmissions="2"),
    Scenario("drop_first_no_retries", Rule(drop_first=True), Rule(), NO_RETRY, "discard", retransmissions="0"),
]


@pytest.fixture(scope="module")
def freeradius(lab_pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    if not freeradius_available():
        pytest.skip("needs /usr/sbin/freeradius (Debian package freeradius)")
    eap = EapConfig(ca_file=lab_pki.ca, server_cert=lab_pki.server_chain, server_key=lab_pki.server_key,
                    tls_max_version="1.3")
    with FreeRadiusServer(tmp_path_factory.mktemp("fr-lossy"), DEFAULT_SECRET, [User("alice", DEFAULT_PASSWORD)],
                          eap=eap) as srv:
        yield srv.host, srv.port


def _expected_retransmissions(s: Scenario, o: Any, proxy: LossyProxy, result: str, policy: RetryPolicy) -> int:
    if s.retransmissions == "rounds":
        if result == "discard":  # the first round never recovers: every retry was spent on it
            return policy.retries
        return int(o.round_trips)
    if s.retransmissions == "dropped":
        return proxy.counters["request"].dropped
    return int(s.retransmissions)


@pytest.mark.parametrize("server", ["freeradius", "emulator"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_lossy_path(request: pytest.FixtureRequest, lab_pki: Pki, robust: Any, server: str, method: str,
                    scenario: Scenario) -> None:
    if server == "freeradius":
        upstream = request.getfixturevalue("freeradius")
        request.applymarker(pytest.mark.freeradius)
    else:
        upstream = request.getfixturevalue("emulator_thread")
    result, policy = scenario.result, scenario.policy
    if server == "emulator":
        result, policy = scenario.emulator_result or result, scenario.emulator_policy or policy
    with LossyProxy(upstream, request=scenario.request, reply=scenario.reply, seed=11) as proxy:
        check = make_check(method, proxy.address, lab_pki, policy=policy)
        outcome = asyncio.run(asyncio.wait_for(run_check(check, proxy.address, RunOptions()), 120)).outcome
    assert not proxy.errors
    c = proxy.counters
    robust("lossy", f"{server}/{method}/{scenario.name}", outcome, retransmissions=outcome.retransmissions,
           dropped=c["request"].dropped + c["reply"].dropped)
    assert (outcome.result, outcome.error_kind) == (result, None), outcome.error_detail
    assert outcome.retransmissions == _expected_retransmissions(scenario, outcome, proxy, result, policy), \
        (outcome.retransmissions, outcome.round_trips, c)
    assert_bounded(outcome)
    if result == "accept" and method != "pap":
        assert outcome.mppe == "match"


def test_reorder_two_conversations(emulator_thread: Any, lab_pki: Pki, robust: Any) -> None:
    """Two PAP checks at once through a proxy that swaps each pair of requests: both accepted, no retransmission."""
    with LossyProxy(emulator_thread, request=Rule(reorder=True), reply=Rule(reorder=True)) as proxy:
        async def both() -> list[Any]:
            checks = [make_check("pap", proxy.address, lab_pki, policy=PATIENT, identity=user)
                      for user in ("alice", "alice")]
            return await asyncio.gather(*(run_check(c, proxy.address, RunOptions()) for c in checks))
        results = asyncio.run(asyncio.wait_for(both(), 60))
    outcomes = [r.outcome for r in results]
    robust("lossy", "emulator/pap/reorder_two_conversations", outcomes[0])
    assert [(o.result, o.retransmissions) for o in outcomes] == [("accept", 0), ("accept", 0)]
    assert proxy.counters["request"].reordered >= 1
