"""``auth``'s one-screen summary (issue 13): the TLS facts an EAP admin wants, wrapped to the terminal,
the real wait of a discard, the real duration of a conversation our side ended."""

from __future__ import annotations

from probe.diagnosis import CATALOGUE
from probe.outcome import AttemptRecord, Outcome
from probe.report import summary

TLS = {"version": "TLSv1.2", "cipher": "ECDHE-RSA-AES256-GCM-SHA384", "resumed": True,
       "resumption": {"offered": True, "resumed": True, "first_duration_s": 0.02, "first_round_trips": 8},
       "server_cert": {"subject": "CN=nps.lab.test", "issuer": "CN=Lab CA", "not_after": "2027-05-01T00:00:00Z",
                       "sha256": "ab" * 32, "san_dns": ["nps.lab.test"]},
       "validation": "ok", "client_cert": {"subject": "CN=alice", "not_after": "2026-12-24T00:00:00Z", "days_left": 21}}


def _field(text: str, label: str) -> str:
    """The (unwrapped) text of one labelled row."""
    lines = text.splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith(f"  {label} "))
    out = [lines[i][16:]]
    for line in lines[i + 1:]:
        if not line.startswith(" " * 16):
            break
        out.append(line[16:])
    return " ".join(out)


def test_tls_facts_at_a_glance() -> None:
    o = Outcome(target="127.0.0.1:1812", method="peap-tls", identity="alice", result="accept",
                expectation_met=True, within_window=True, final_response_s=0.004, duration_s=0.03, tls=dict(TLS))
    text = summary(o, width=200)
    assert _field(text, "TLS") == ("TLSv1.2, ECDHE-RSA-AES256-GCM-SHA384, session resumed; fast reconnect: "
                                   "the server resumed the first session")
    assert _field(text, "Server cert") == "CN=nps.lab.test, issuer CN=Lab CA, until 2027-05-01, DNS nps.lab.test"
    assert _field(text, "Validation") == "ok"
    assert _field(text, "Client cert") == "CN=alice, until 2026-12-24: 21 day(s) left"
    assert "final answer 4.0 ms, total 30.0 ms" in text  # never a bare 0.000 s


def test_not_resumed_and_validation_failure_are_said() -> None:
    tls = dict(TLS, resumed=False, resumption={"offered": True, "resumed": False},
               validation="failed: server certificate not trusted")
    o = Outcome(target="t", method="eap-tls", identity="alice", result="accept", tls=tls)
    text = summary(o, width=200)
    assert "full handshake; fast reconnect: offered, NOT resumed" in text
    assert _field(text, "Validation") == "failed: server certificate not trusted"


def test_a_discard_says_how_long_it_really_waited() -> None:
    """--timeout 2 --retries 1 --late-wait 4: the probe waited 4 s, not the 60 s window."""
    o = Outcome(target="t", method="pap", identity="carol", result="discard", duration_s=4.003, round_trips=1,
                retransmissions=1, attempts=[AttemptRecord(1, 0.0), AttemptRecord(1, 2.0, retransmission=1)])
    text = summary(o, width=200)
    window = _field(text, "MFA window")
    assert "4.0 s this probe waited" in window and "60 s window" not in window and "within 60" not in window


def test_a_conversation_our_side_ended_shows_its_real_duration() -> None:
    """An EAP conversation the probe aborted on the server certificate: the time it took, not 0.000 s."""
    attempts = [AttemptRecord(r, 0.002 * r, 0.002 * r + 0.0004, "Access-Challenge") for r in range(1, 7)]
    o = Outcome(target="t", method="eap-tls", identity="alice", result="error", error_kind="tls",  # type: ignore[arg-type]
                error_detail="server name mismatch", duration_s=0.0125, final_response_s=0.0004, round_trips=6,
                attempts=attempts)
    text = summary(o, width=200)
    assert "this probe ended the conversation after 12.5 ms, in round 6" in _field(text, "Time")
    assert "0.000" not in text
    assert "no answer within" not in text and "not reached" in _field(text, "MFA window")


def test_the_diagnosis_wraps_to_the_width() -> None:
    o = Outcome(target="t", method="pap", identity="carol", result="discard", duration_s=90.0,
                diagnosis=[CATALOGUE["no_reply"].render()])
    for width in (60, 80, 120):
        lines = summary(o, width=width).splitlines()
        assert all(len(line) <= width for line in lines), width
        assert sum(line.startswith("  Diagnosis") for line in lines) == 1
        assert len([line for line in lines if line.startswith(" " * 16)]) >= 3
