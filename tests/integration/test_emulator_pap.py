"""The probe against the NPS emulator over loopback UDP: the PAP behaviour matrix."""

from __future__ import annotations

import asyncio
import os
from collections import Counter

import pytest

from probe.drivers.aio import authenticate
from probe.emulator.config import default_config
from probe.radius import packet as pk
from probe.radius.transport import RadiusClient, RetryPolicy
from tests.helpers import FAST, emulator, pap, run


def codes(outcome) -> list[str]:  # type: ignore[no-untyped-def]
    return [d["code"] for d in outcome.diagnosis]


def probe_one(identity: str, config=None, **kw):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        async with emulator(config) as em:
            outcome = await authenticate(pap(em.address, identity, **kw))
            return outcome, list(em.events)

    return run(go())


def test_approve_is_accept_with_reply_attributes() -> None:
    o, events = probe_one("alice")
    assert (o.result, o.error_kind, o.expectation_met, o.exit_code) == ("accept", None, True, 0)
    assert o.reply_attributes["Class"] == [b"radius-probe-alice"]
    assert o.message_authenticator == "absent"  # NPS signs no PAP reply
    assert o.within_window and o.round_trips == 1 and o.diagnosis == []
    assert [e.event_id for e in events] == [6272]


def test_deny_is_reject_with_reply_message() -> None:
    o, events = probe_one("bob")
    assert o.result == "reject" and o.reply_message == "Authentication was denied by the user."
    assert codes(o) == ["access_reject"] and o.exit_code == 2
    assert (events[-1].event_id, events[-1].reason) == (6273, 21)


def test_wrong_password_is_reject_reason_16() -> None:
    o, events = probe_one("alice", password="wrong")
    assert o.result == "reject" and codes(o) == ["access_reject"]
    assert (events[-1].event_id, events[-1].reason) == (6273, 16)


def test_discard_drops_duplicates_too() -> None:
    policy = RetryPolicy(timeout_s=0.3, retries=2, listen_s=1.2)
    o, events = probe_one("carol", policy=policy)
    assert o.result == "discard" and o.error_kind is None and o.final_response_s is None
    assert o.retransmissions == 2 and len(o.attempts) == 3
    assert codes(o) == ["no_reply"] and not o.within_window and o.exit_code == 2
    ids = Counter(e.event_id for e in events)
    assert ids[6274] == 1 and ids[4401] == 2  # one ESTS_TOKEN_ERROR, both retransmissions dropped


def test_discard_expected_is_met() -> None:
    o, _ = probe_one("carol", expected="discard")
    assert o.result == "discard" and o.expectation_met and o.exit_code == 0


def test_otp_without_code_is_challenge_with_prompt() -> None:
    o, _ = probe_one("dave")
    assert o.result == "challenge" and o.reply_message == "Enter your Microsoft verification code"
    assert codes(o) == ["otp_challenge"] and o.exit_code == 2
    assert "State" in o.reply_attributes


def test_otp_round_is_answered_with_the_same_state() -> None:
    o, events = probe_one("dave", otp="123456")
    assert o.result == "accept" and o.round_trips == 2 and o.expectation_met
    assert [a.code for a in o.attempts] == ["Access-Challenge", "Access-Accept"]
    assert [e.event_id for e in events] == [6276, 6272]


def test_wrong_otp_is_told_apart_from_a_denied_push() -> None:
    o, _ = probe_one("dave", otp="000000")
    assert o.result == "reject" and o.round_trips == 2
    assert codes(o) == ["otp_rejected"]
    denied, _ = probe_one("bob")
    assert denied.result == "reject" and "otp_rejected" not in codes(denied)


def test_not_enrolled_follows_require_user_match() -> None:
    o, _ = probe_one("erin")
    assert o.result == "reject"
    cfg = default_config()
    cfg.require_user_match = False
    o, events = probe_one("erin", config=cfg)
    assert o.result == "accept" and "REQUIRE_USER_MATCH false" in events[-1].text


def test_not_found_in_entra_is_reject_reason_21() -> None:
    o, events = probe_one("frank")
    assert o.result == "reject" and (events[-1].event_id, events[-1].reason) == (6273, 21)


def test_ip_whitelist_skips_mfa_by_nas_ip_address() -> None:
    cfg = default_config()
    cfg.ip_whitelist = ["192.0.2.50"]
    o, events = probe_one("carol", config=cfg, extra_attrs=[("NAS-IP-Address", "192.0.2.50")])
    assert o.result == "accept" and "IP_WHITELIST" in events[-1].text


def test_wrong_secret_is_silent_drop() -> None:
    o, events = probe_one("alice", secret="not-the-secret")
    assert o.result == "discard" and codes(o) == ["no_reply"]
    assert {e.event_id for e in events} == {18}


def test_required_message_authenticator_drops_unsigned_requests() -> None:
    cfg = default_config()
    cfg.require_message_authenticator = True

    async def go():  # type: ignore[no-untyped-def]
        async with emulator(cfg) as em:
            signed = await authenticate(pap(em.address, "alice"))
            async with RadiusClient(em.address, cfg.secret) as client:
                def unsigned(ident: int) -> pk.Packet:
                    auth = os.urandom(16)
                    attrs = [(pk.USER_NAME, b"alice"), pk.password_attr(b"Passw0rd!", cfg.secret, auth)]
                    return pk.build_request(ident, auth, attrs, cfg.secret, message_authenticator=False)

                ex = await client.exchange(unsigned, FAST)
            wrong = await authenticate(pap(em.address, "alice", secret="wrong"))
            return signed, ex, wrong, [e.event_id for e in em.events]

    signed, ex, wrong, events = run(go())
    assert signed.result == "accept"
    assert ex.reply is None and ex.error_kind is None
    assert wrong.result == "discard"
    assert events == [6272, 17, 17, 18, 18]


def test_short_hold_outside_window_and_late_for_short_client_timeout() -> None:
    cfg = default_config()
    cfg.users["patient"].delay_s = 1.5

    async def go():  # type: ignore[no-untyped-def]
        async with emulator(cfg) as em:
            outside = authenticate(pap(em.address, "patient", window_s=1.0,
                                       policy=RetryPolicy(timeout_s=5, retries=0)))
            late = authenticate(pap(em.address, "patient", window_s=10.0,
                                    policy=RetryPolicy(timeout_s=0.5, retries=1, listen_s=5)))
            return await asyncio.gather(outside, late)

    outside, late = run(go())
    assert outside.result == "accept" and not outside.within_window and not outside.late
    assert outside.final_response_s is not None and outside.final_response_s >= 1.5
    assert "answer_outside_window" in codes(outside) and outside.exit_code == 2
    assert late.result == "accept" and late.late and late.within_window
    assert late.client_timeout_s == 1.0 and late.retransmissions == 1
    assert "late_answer_beyond_client_timeout" in codes(late) and not late.expectation_met
    assert late.attempts[-1].late and late.attempts[-1].code == "Access-Accept"


@pytest.mark.slow
def test_65s_hold_with_default_policy_is_received() -> None:
    """The default client waits 90 s: an approval at 65 s arrives, outside the 60 s window."""
    o, events = probe_one("slow", policy=RetryPolicy())
    assert o.result == "accept" and not o.late
    assert o.final_response_s is not None and o.final_response_s >= 64.5  # the 65 s hold, as the Outcome timed it
    assert not o.within_window and o.window_s == 60 and "answer_outside_window" in codes(o)
    assert o.retransmissions == 2  # at 30 s and 60 s, byte-identical, dropped as duplicates
    assert Counter(e.event_id for e in events)[4401] == 2


def test_a_thousand_concurrent_probes_all_end_in_an_outcome() -> None:
    users = ["alice", "bob", "dave", "carol", "patient"]
    expected = {"alice": "accept", "bob": "reject", "dave": "challenge", "carol": "discard", "patient": "accept"}
    # Generous: under load an answer may take seconds; the test is about every probe ending in its outcome.
    policy = RetryPolicy(timeout_s=10.0, retries=1, listen_s=20.0)
    cfg = default_config()
    cfg.users["patient"].delay_s = 1.0  # held answers keep Identifiers busy

    async def go():  # type: ignore[no-untyped-def]
        async with emulator(cfg) as em:
            async with RadiusClient(em.address, b"radius-probe-lab") as client:
                jobs = [authenticate(pap(em.address, users[i % 5], policy=policy), client) for i in range(1000)]
                outcomes = await asyncio.gather(*jobs)
                return outcomes, len(client._sockets), client.peak_in_flight, em.requests

    outcomes, sockets, peak, requests = run(go())
    assert len(outcomes) == 1000
    wrong = [(o.identity, o.result, o.error_kind) for o in outcomes if o.result != expected[o.identity]]
    assert wrong == []
    assert peak > 256 and sockets >= -(-peak // 256)  # more than 256 in flight: a pool of sockets
    assert requests >= 1000


def test_emulator_memory_stays_bounded_under_a_flood(monkeypatch: pytest.MonkeyPatch) -> None:
    """Discarded requests, OTP challenges and answered requests are forgotten after their time."""
    import probe.emulator.server as server

    monkeypatch.setattr(server, "SESSION_TTL_S", 0.3)
    cfg = default_config()
    cfg.duplicate_hold_s = 0.3
    cfg.otp_session_lifetime_s = 0.2  # OTP challenges outlive their MFA session by a third, at least SESSION_TTL_S
    quick = RetryPolicy(timeout_s=0.05, retries=0, listen_s=0.05)

    async def go():  # type: ignore[no-untyped-def]
        async with emulator(cfg) as em:
            async with RadiusClient(em.address, cfg.secret) as client:
                users = ["carol", "dave", "alice"]
                await asyncio.gather(*(authenticate(pap(em.address, users[i % 3], policy=quick), client)
                                       for i in range(600)))
                peak = (len(em._seen), len(em._otp_states))
                await asyncio.sleep(0.5)
                await authenticate(pap(em.address, "alice", policy=quick), client)
                return peak, (len(em._seen), len(em._otp_states))

    peak, after = run(go())
    assert peak[0] > 100 and peak[1] > 50  # the flood was tracked ...
    assert after == (1, 0)  # ... and forgotten once its time passed
