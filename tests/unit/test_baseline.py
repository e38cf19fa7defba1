"""probe/baseline.py: reading an earlier run --json, the answer-time spread, and what counts as worse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from probe.baseline import (EXIT_REGRESSED, Baseline, compare, exit_code_with, load_baselines, slow_limit,
                            tolerance_s)
from probe.inputs import UsageError


def record(name: str, verdict: str = "OK", t: float | None = 0.010, result: str = "accept", target: str = "lab",
           failures: list[str] | None = None, degraded: list[str] | None = None) -> dict[str, Any]:
    return {"name": name, "target": target, "module": "m", "labels": {}, "verdict": verdict,
            "exit_code": {"OK": 0, "DEGRADED": 1, "FAILED": 2, "UNKNOWN": 3}[verdict],
            "failures": failures or [], "degraded": degraded or [],
            "outcome": {"schema": 1, "result": result, "final_response_s": t}}


def baseline_of(*runs: list[dict[str, Any]]) -> Baseline:
    b = Baseline(paths=[f"run{i}.json" for i in range(len(runs))])
    for run in runs:
        for r in run:
            b.records.setdefault((r["name"], r["target"]), []).append(r)
    return b


def kinds(baseline: Baseline, now: list[dict[str, Any]]) -> dict[str, str]:
    return {c.name: c.kind for c in compare(baseline, now).changes}


def test_tolerance_is_three_mads_a_quarter_of_the_median_or_250_ms() -> None:
    assert tolerance_s([0.010]) == 0.25  # one sample: no MAD, the floor
    assert tolerance_s([4.0]) == 1.0  # 25 % of a 4 s MFA approval
    assert tolerance_s([1.0, 1.0, 3.0, 5.0, 5.0]) == pytest.approx(6.0)  # MAD 2: 3 x MAD wins over 25 % x 3
    assert slow_limit([1.0, 1.2]) == pytest.approx(1.2 + 0.3)  # median 1.1, MAD 0.1


def test_each_kind_of_change() -> None:
    before = [record("same"), record("verdict"), record("slower", t=1.0), record("faster", t=3.0),
              record("degraded"), record("fixed", "FAILED", result="reject", failures=["expected accept, got reject"]),
              record("gone")]
    now = [record("same", t=0.2), record("verdict", "FAILED", result="reject"), record("slower", t=1.3),
           record("faster", t=1.0), record("degraded", "DEGRADED", degraded=["slow answer: 50.1 s is over 75%"]),
           record("fixed"), record("new")]
    got = kinds(baseline_of(before), now)
    assert got == {"same": "same", "verdict": "worse", "slower": "worse", "faster": "better",
                   "degraded": "worse", "fixed": "better", "new": "new", "gone": "gone"}
    changes = {c.name: c for c in compare(baseline_of(before), now).changes}
    assert changes["verdict"].reasons == ["verdict OK -> FAILED (reject, was accept)"]
    assert changes["slower"].reasons[0].startswith("answer 1.300 s, beyond the earlier spread (limit 1.250 s")
    assert changes["degraded"].reasons[1] == "new degraded state: slow answer: 50.1 s is over 75%"


def test_a_slower_handshake_shows_in_the_conversation_time_and_discards_are_not_timed() -> None:
    """PEAP: the final round answers in 1 ms both times, but the ten rounds before it got slower."""
    def peap(duration: float, result: str = "accept") -> dict[str, Any]:
        r = record("peap", t=0.001, result=result)
        r["outcome"]["duration_s"] = duration
        return r
    got = compare(baseline_of([peap(0.05)]), [peap(0.9)]).changes[0]
    assert got.kind == "worse" and got.reasons[0].startswith("conversation 0.900 s, beyond the earlier spread")
    assert kinds(baseline_of([peap(0.05)]), [peap(0.2)]) == {"peap": "same"}
    discard = [peap(1.0, "discard")]
    assert kinds(baseline_of([peap(0.05, "discard")]), discard) == {"peap": "same"}  # timeouts, not answers
    assert kinds(baseline_of(discard), [peap(0.05)]) == {"peap": "same"}


def test_the_same_state_with_other_numbers_is_no_change() -> None:
    """A certificate that expires in 11 days instead of 12 is the same degraded state, not a new one."""
    before = [record("cert", "DEGRADED", degraded=["server certificate CN=nps expires in 12 day(s) (2027-01-13)"])]
    now = [record("cert", "DEGRADED", degraded=["server certificate CN=nps expires in 11 day(s) (2027-01-12)"])]
    assert kinds(baseline_of(before), now) == {"cert": "same"}


def test_several_baselines_give_the_spread_and_the_latest_verdict() -> None:
    runs = [[record("c", t=t)] for t in (1.0, 1.1, 2.9)]  # one slow night: the max is 2.9 s
    # median 1.1, MAD 0.1: the limit is 2.9 + max(0.3, 0.275, 0.25) = 3.2 s
    assert kinds(baseline_of(*runs), [record("c", t=3.1)]) == {"c": "same"}
    assert kinds(baseline_of(*runs), [record("c", t=3.3)]) == {"c": "worse"}
    flapping = [[record("c", "FAILED", result="reject")], [record("c")]]
    assert kinds(baseline_of(*flapping), [record("c")]) == {"c": "same"}  # compared with the latest: OK


def test_exit_code_4_only_for_a_regression_and_never_over_3() -> None:
    b = baseline_of([record("a"), record("b", "FAILED", result="reject")])
    still_failing = compare(b, [record("a"), record("b", "FAILED", result="reject")])
    assert not still_failing.regressed and exit_code_with(2, still_failing) == 2
    regressed = compare(b, [record("a", "DEGRADED", degraded=["x"]), record("b", "FAILED", result="reject")])
    assert regressed.regressed and exit_code_with(2, regressed) == EXIT_REGRESSED == 4
    assert exit_code_with(3, regressed) == 3
    assert exit_code_with(0, None) == 0


@pytest.mark.parametrize(("text", "message"), [
    ("", "not JSON (line 1 column 1: Expecting value)"),
    ("[1, 2]", 'not a run --json output (no "checks" list at the top)'),
    ('{"schema": 1, "target": "x", "method": "pap", "result": "accept"}', "one Outcome (auth --json)"),
    ('{"schema": 2, "checks": []}', "schema 2, this radius-probe reads run --json schema 1"),
    ('{"schema": 1, "checks": [{"name": "a", "target": "t", "verdict": "FINE", "outcome": {}}]}',
     "checks[0]: verdict 'FINE' is none of OK, DEGRADED, FAILED, UNKNOWN"),
    ('{"schema": 1, "checks": [{"name": "a", "target": "t", "verdict": "OK"}]}', "checks[0]: no 'outcome' object"),
    ('{"schema": 1, "checks": [{"name": "a", "target": "t", "verdict": "OK", "outcome": {"final_response_s": "1"}}]}',
     "checks[0]: outcome.final_response_s is not a number of seconds"),
])
def test_a_file_that_is_not_a_run_json_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "earlier.json"
    path.write_text(text)
    with pytest.raises(UsageError) as exc:
        load_baselines([str(path)])
    assert str(exc.value).startswith(f"--baseline {path}: ")
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_hostile_json_is_one_line_too(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(UsageError, match="nested too deep"):
        load_baselines([str(deep)])
    nan = tmp_path / "nan.json"
    nan.write_text('{"schema": 1, "checks": [{"name": "a", "target": "t", "verdict": "OK", '
                   '"outcome": {"final_response_s": NaN}}]}')
    with pytest.raises(UsageError, match="final_response_s is not a number of seconds"):
        load_baselines([str(nan)])


def test_the_table_never_prints_control_characters() -> None:
    before = [record("evil\x1b[2Jname", failures=[])]
    now = [record("evil\x1b[2Jname", "FAILED", result="reject", failures=["Reply-Message '\x1b]0;pwned\x07'"])]
    table = compare(baseline_of(before), now).table()
    assert "\x1b" not in table and "\x07" not in table
    assert "evil\\x1b[2Jname" in table and "\\x07" in table


def test_unreadable_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"nope.json: cannot read \(No such file or directory\)$"):
        load_baselines([str(tmp_path / "nope.json")])
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(UsageError, match="not UTF-8 text"):
        load_baselines([str(tmp_path / "bin.json")])


def test_a_run_json_loads(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"schema": 1, "checks": [record("a"), record("a", target="other")], "exit_code": 0}))
    b = load_baselines([str(path), str(path)])
    assert set(b.records) == {("a", "lab"), ("a", "other")} and len(b.records[("a", "lab")]) == 2
