"""``radius-probe demo`` reads as passing (issue 13): one line per planted behaviour with a tick, each
cause once, the total last, at most 40 lines; ``-v`` the full detail."""

from __future__ import annotations

import re

from probe.demo import _cases, render
from probe.diagnosis import CATALOGUE
from probe.outcome import Outcome
from tests.helpers import cli

TOTAL = re.compile(r"^(\d+) of (\d+) behaviours recognised")


def _outcome(result: str, code: str | None) -> Outcome:
    o = Outcome(target="127.0.0.1:1812", method="pap", identity="x", result=result)  # type: ignore[arg-type]
    if code:
        o.diagnosis = [CATALOGUE[code].render()]
    return o


def test_demo_default_view_reads_as_passing() -> None:
    r = cli("demo", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) <= 40, r.stdout
    total = TOTAL.match(lines[-1])
    assert total and total.group(1) == total.group(2), lines[-1]
    rows = [line for line in lines if " -> " in line]
    assert len(rows) == int(total.group(2)) and all(row.startswith("\u2713") for row in rows), r.stdout
    assert "FAILED" not in r.stdout
    causes = [line.split(":")[0].strip() for line in lines if line.startswith("   ") and ":" in line]
    assert len(causes) == len(set(causes)) >= 8, causes  # each distinct diagnosis once
    for code in ("no_reply", "nps_discard_after_primary_auth", "otp_challenge", "late_answer_beyond_client_timeout",
                 "answer_outside_window", "port_unreachable", "client_certificate_rejected"):
        assert code in causes
    assert any("ESTS_TOKEN_ERROR discard" in row and "every EAP method" in row for row in rows)

    detail = cli("demo", "-v", timeout=90)
    assert detail.returncode == 0
    assert len(detail.stdout.splitlines()) > 60
    assert "Diagnosis, case by case:" in detail.stdout and "Likely:" in detail.stdout
    assert TOTAL.match(detail.stdout.splitlines()[-1])


def test_demo_view_marks_a_behaviour_not_recognised() -> None:
    """A case whose Outcome is not what was planted gets a cross and is named in the total."""
    cases = _cases()
    results = [(c, _outcome(*c.shows)) for c in cases]
    shown = [True] * len(cases)
    lines = render(results, shown)
    good = TOTAL.match(lines[-1])
    assert good and good.group(1) == good.group(2)
    carol = next(i for i, c in enumerate(cases) if c.identity == "carol" and c.method == "pap")
    results[carol] = (cases[carol], _outcome("accept", None))
    shown[carol] = False
    lines = render(results, shown)
    total = TOTAL.match(lines[-1])
    assert total and int(total.group(1)) == int(total.group(2)) - 1
    assert "NOT recognised: ESTS_TOKEN_ERROR discard (pap)" in lines[-1]
    crossed = [line for line in lines if not line.startswith("\u2713") and " -> " in line]
    assert crossed == [next(line for line in lines if "ESTS_TOKEN_ERROR discard" in line and "pap" in line)]
    assert crossed[0].endswith("-> accept")
