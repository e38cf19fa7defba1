"""Before and after a rollout: ``radius-probe run --baseline EARLIER.json``.

A change board's question after the NPS extension was installed or upgraded: what got worse?
This compares the checks of this run with the checks of one or more earlier ``run --json``
outputs (the same records: :meth:`probe.checks.CheckResult.to_dict`), check by check, keyed by
(check name, target name):

- **worse** (a regression): the verdict moved up the exit-code order (OK < DEGRADED < FAILED <
  UNKNOWN); a failure or a degraded state that the earlier run did not have (compared with the
  numbers taken out, so "expires in 12 days" and "expires in 11 days" are the same state); or the
  final answer (or, when that did not move, the whole conversation: a slower TLS handshake over
  ten rounds) came later than the earlier run's spread allows (below). Only answers are timed: a
  discard's duration is its own timeouts.
- **better**: the verdict moved down, a failure or degraded state is gone, or the answer came
  earlier than the spread (and nothing got worse).
- **new**: a check this run has and the baseline has not; **gone**: the other way round.
  Neither is a regression: the probe files changed, not the server.

The spread of the earlier answer times: with the earlier final answer times ``t`` of the check
(one per baseline file; give ``--baseline`` several times, e.g. a week of nightly runs, for a
real spread), a later answer is *slower* when it exceeds ``max(t) + tolerance`` and *faster*
when below ``min(t) - tolerance``, where ``tolerance = max(3 x MAD(t), 25 % of median(t),
0.25 s)``: MAD (the median absolute deviation) is the spread robust against one odd run; the
25 % and the 250 ms floor keep scheduling noise of a busy host (and of one earlier sample, whose
MAD is 0) from reading as a regression. An MFA approval is human-speed: compare health accounts
that approve automatically, or give several baselines.

The exit code keeps the run's contract (0 OK, 1 DEGRADED, 2 FAILED, 3 could not probe) and adds
one value, only with ``--baseline``: **4, something regressed against the baseline** (unless the
run itself could not probe: 3 stays 3). A check that failed before and fails the same way now
is no regression, so the run exits 2, not 4.

A baseline file that is not a ``run --json`` output is bad input: one line, exit 3, before any
check runs.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from .inputs import UsageError
from .outcome import EXIT_UNKNOWN, VERDICTS

__all__ = ["EXIT_REGRESSED", "MAX_BASELINE_BYTES", "Baseline", "Change", "Comparison", "compare",
           "exit_code_with", "load_baselines", "slow_limit", "tolerance_s"]

EXIT_REGRESSED = 4
MAX_BASELINE_BYTES = 64 * 1024 * 1024  # a run of 100,000 checks is far below; a wrong file is refused early
TOLERANCE_FLOOR_S = 0.25
TOLERANCE_FRACTION = 0.25
TOLERANCE_MADS = 3.0

Kind = Literal["worse", "better", "new", "gone", "same"]
Key = tuple[str, str]
_RANK = {name: code for code, name in VERDICTS.items()}


@dataclass
class Baseline:
    """The earlier runs: each check's records, one per baseline file that has it (oldest first)."""

    paths: list[str]
    records: dict[Key, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass
class Change:
    name: str
    target: str
    kind: Kind
    before: str | None  # the verdict in the latest baseline that has the check
    now: str | None
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "change": self.kind, "before": self.before,
                "now": self.now, "reasons": list(self.reasons)}


@dataclass
class Comparison:
    baseline: Baseline
    changes: list[Change]

    @property
    def regressed(self) -> bool:
        return any(c.kind == "worse" for c in self.changes)

    def listed(self) -> list[Change]:
        """The changed checks, worst news first (worse, better, new, gone), in run order within each."""
        order: dict[str, int] = {"worse": 0, "better": 1, "new": 2, "gone": 3}
        return sorted((c for c in self.changes if c.kind != "same"), key=lambda c: order[c.kind])

    def count(self, kind: Kind) -> int:
        return sum(1 for c in self.changes if c.kind == kind)

    def counts_line(self) -> str:
        kinds: tuple[Kind, ...] = ("worse", "better", "new", "gone", "same")
        return ", ".join(f"{self.count(k)} {'unchanged' if k == 'same' else k}" for k in kinds)

    def to_dict(self) -> dict[str, Any]:
        """``run --json``'s "baseline" entry (only with --baseline)."""
        return {"files": list(self.baseline.paths), "regressed": self.regressed,
                "changes": [c.to_dict() for c in self.listed()],
                "unchanged": self.count("same")}

    def table(self) -> str:
        """The console comparison: one row per changed check, then the counts."""
        files = ", ".join(self.baseline.paths)
        head = ("change", "check", "target", "before", "now", "what")
        rows = [(c.kind.upper(), c.name, c.target, c.before or "-", c.now or "-", "; ".join(c.reasons) or "-")
                for c in self.listed()]
        out = [_printable(f"Against the baseline {files}:")]
        if rows:
            widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]
            fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
            out += [fmt.format(*head), fmt.format(*("-" * w for w in widths), "-" * 4)]
            out += [_printable(fmt.format(*r)) for r in rows]
        verdict = f"REGRESSED (exit {EXIT_REGRESSED})" if self.regressed else "no regression"
        out.append(f"{len(self.changes)} check(s) compared: {self.counts_line()}: {verdict}")
        return "\n".join(out)


# ---------------------------------------------------------------------------
# Reading


def load_baselines(paths: Sequence[str]) -> Baseline:
    """Every ``--baseline`` file, validated; a file that is not a ``run --json`` output is a UsageError."""
    baseline = Baseline(paths=list(paths))
    for path in paths:
        for record in _read(path):
            baseline.records.setdefault((record["name"], record["target"]), []).append(record)
    return baseline


def _read(path: str) -> list[dict[str, Any]]:
    what = f"--baseline {path}"
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BASELINE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{what}: cannot read ({exc.strerror or exc})") from None
    if len(data) > MAX_BASELINE_BYTES:
        raise UsageError(f"{what}: larger than {MAX_BASELINE_BYTES // (1024 * 1024)} MB, not a run --json output")
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{what}: not UTF-8 text, not a run --json output") from None
    except RecursionError:
        raise UsageError(f"{what}: JSON nested too deep, not a run --json output") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what}: not JSON (line {exc.lineno} column {exc.colno}: {exc.msg}); "
                         f"give a file written by radius-probe run --json") from None
    if isinstance(doc, dict) and "checks" not in doc and "result" in doc and "method" in doc:
        raise UsageError(f"{what}: one Outcome (auth --json), not a run --json output with a \"checks\" list")
    if not isinstance(doc, dict) or not isinstance(doc.get("checks"), list):
        raise UsageError(f"{what}: not a run --json output (no \"checks\" list at the top)")
    if doc.get("schema") != 1:
        raise UsageError(f"{what}: schema {doc.get('schema')!r}, this radius-probe reads run --json schema 1")
    records = []
    for index, record in enumerate(doc["checks"]):
        problem = _record_problem(record)
        if problem is not None:
            raise UsageError(f"{what}: checks[{index}]: {problem}")
        records.append(record)
    return records


def _record_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return "not an object"
    for key in ("name", "target", "verdict"):
        if not isinstance(record.get(key), str):
            return f"no {key!r} string"
    if record["verdict"] not in _RANK:
        return f"verdict {record['verdict'][:20]!r} is none of {', '.join(_RANK)}"
    if not isinstance(record.get("outcome"), dict):
        return "no 'outcome' object"
    for key in ("final_response_s", "duration_s"):
        t = record["outcome"].get(key)
        if t is not None and (not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t) or t < 0):
            return f"outcome.{key} is not a number of seconds"
    for key in ("failures", "degraded"):
        if not isinstance(record.get(key, []), list):
            return f"{key!r} is not a list"
    return None


# ---------------------------------------------------------------------------
# Comparing


def tolerance_s(samples: Sequence[float]) -> float:
    """How far beyond the earlier answer times a new one may fall before it counts (module docstring)."""
    median = statistics.median(samples)
    mad = statistics.median(abs(t - median) for t in samples)
    return max(TOLERANCE_MADS * mad, TOLERANCE_FRACTION * median, TOLERANCE_FLOOR_S)


def slow_limit(samples: Sequence[float]) -> float:
    return max(samples) + tolerance_s(samples)


def _kinds(items: Sequence[Any]) -> dict[str, str]:
    """Normalised text (numbers taken out) -> the text itself: the same state with other numbers is the same."""
    return {re.sub(r"\d+(?:\.\d+)?", "#", str(item)): str(item) for item in items}


def _printable(text: str) -> str:
    """Terminal-safe: control characters (an earlier file's, a server's) shown as escapes, never sent raw."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _short(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


_ANSWERED = ("accept", "reject", "challenge")


def _times(records: Sequence[dict[str, Any]], key: str) -> list[float]:
    """The earlier answered runs' times (a discard's duration is its timeouts: no answer time to compare)."""
    return [float(r["outcome"][key]) for r in records
            if r["outcome"].get(key) is not None and r["outcome"].get("result") in _ANSWERED]


def _timing(earlier: list[dict[str, Any]], now: dict[str, Any], worse: list[str], better: list[str]) -> None:
    """The final answer, then (if that did not move) the whole conversation, against the earlier spread."""
    if now["outcome"].get("result") not in _ANSWERED:
        return
    for key, what in (("final_response_s", "answer"), ("duration_s", "conversation")):
        samples, t = _times(earlier, key), now["outcome"].get(key)
        if not samples or t is None:
            continue
        tol = tolerance_s(samples)
        if t > max(samples) + tol:
            worse.append(f"{what} {t:.3f} s, beyond the earlier spread (limit {max(samples) + tol:.3f} s = "
                         f"earlier max {max(samples):.3f} s + {tol:.3f} s)")
            return
        if t < min(samples) - tol:
            better.append(f"{what} {t:.3f} s, faster than the earlier spread (earlier min {min(samples):.3f} s)")
            return


def _change(key: Key, earlier: list[dict[str, Any]], now: dict[str, Any]) -> Change:
    before = earlier[-1]
    change = Change(key[0], key[1], "same", before["verdict"], now["verdict"])
    worse: list[str] = []
    better: list[str] = []
    rank_before, rank_now = _RANK[before["verdict"]], _RANK[now["verdict"]]
    was, got = before["outcome"].get("result"), now["outcome"].get("result")
    result_note = f" ({got}, was {was})" if was != got else ""
    if rank_now > rank_before:
        worse.append(f"verdict {before['verdict']} -> {now['verdict']}{result_note}")
    elif rank_now < rank_before:
        better.append(f"verdict {before['verdict']} -> {now['verdict']}{result_note}")
    for field_name, label in (("failures", "failure"), ("degraded", "degraded state")):
        old, new = _kinds(before.get(field_name, [])), _kinds(now.get(field_name, []))
        worse += [f"new {label}: {_short(text)}" for k, text in new.items() if k not in old]
        better += [f"{label} gone: {_short(text)}" for k, text in old.items() if k not in new]
    _timing(earlier, now, worse, better)
    if worse:
        change.kind, change.reasons = "worse", worse + better
    elif better:
        change.kind, change.reasons = "better", better
    return change


def compare(baseline: Baseline, current: Sequence[dict[str, Any]]) -> Comparison:
    """This run's check records (CheckResult.to_dict()) against the baseline: one Change per check."""
    changes: list[Change] = []
    seen: set[Key] = set()
    for record in current:
        key = (record["name"], record["target"])
        if key in seen:
            continue  # the same check twice in one run: the first one is compared
        seen.add(key)
        earlier = baseline.records.get(key)
        if earlier is None:
            changes.append(Change(key[0], key[1], "new", None, record["verdict"], ["not in the baseline"]))
        else:
            changes.append(_change(key, earlier, record))
    for key, earlier in baseline.records.items():
        if key not in seen:
            changes.append(Change(key[0], key[1], "gone", earlier[-1]["verdict"], None, ["not in this run"]))
    return Comparison(baseline, changes)


def exit_code_with(code: int, comparison: Comparison | None) -> int:
    """The run's exit code with --baseline: 4 when anything regressed, unless the run could not probe (3)."""
    if comparison is None or code == EXIT_UNKNOWN or not comparison.regressed:
        return code
    return EXIT_REGRESSED

