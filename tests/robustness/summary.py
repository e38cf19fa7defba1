"""The robustness suite's summary: collected from test reports, printed, optionally written to bench/.

Hooked in by tests/conftest.py (so the controlling process sees it under xdist too).
Each ``robust(...)`` record (tests/robustness/conftest.py) rides in a report's
``user_properties``; at the end of the run the summary (cases per category, outcomes,
peak RSS) goes to the terminal, and with RADIUS_PROBE_ROBUSTNESS_SUMMARY=1 to
bench/robustness-last.txt.
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

_RECORDS: list[dict[str, Any]] = []
_DURATIONS: dict[str, float] = defaultdict(float)
ENV = "RADIUS_PROBE_ROBUSTNESS_SUMMARY"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "tests/robustness/" not in report.nodeid.replace("\\", "/"):
        return
    _DURATIONS[report.nodeid.split("::")[0]] += report.duration
    if report.when != "call":
        return
    for name, value in report.user_properties:
        if name == "robust" and isinstance(value, dict):
            _RECORDS.append(dict(value, passed=report.passed, xfail=hasattr(report, "wasxfail")))


def summary_lines() -> list[str]:
    by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in _RECORDS:
        by_category[rec["category"]].append(rec)
    lines = [f"robustness suite: {len(_RECORDS)} cases in {len(by_category)} categories"]
    for category in sorted(by_category):
        recs = by_category[category]
        outcomes = Counter(r["outcome"] for r in recs)
        json_max = max((r.get("json_bytes", 0) for r in recs), default=0)
        shown = ", ".join(f"{k} x{v}" for k, v in sorted(outcomes.items()))
        lines.append(f"  {category:<14} {len(recs):>4} cases  outcomes: {shown}" + (f"  max JSON {json_max} B" if json_max else ""))
    peaks = [r["worker_peak_rss_kb"] for r in _RECORDS if "worker_peak_rss_kb" in r]
    extra = [(f"{r['case']} {k[:-7]}", r[k]) for r in _RECORDS for k in r
             if k.endswith("_rss_kb") and k != "worker_peak_rss_kb"]
    if peaks:
        lines.append(f"  peak RSS of the test process: {max(peaks) / 1024:.1f} MB")
    for case, kb in extra:
        lines.append(f"  peak RSS {case}: {kb / 1024:.1f} MB")
    for r in _RECORDS:
        if "note" in r:
            lines.append(f"  {r['category']}/{r['case']}: {r['note']}")
    if _DURATIONS:
        lines.append("  time per file: " + ", ".join(f"{Path(k).name} {v:.1f} s" for k, v in sorted(_DURATIONS.items())))
    xfailed = [f"{r['category']}/{r['case']}" for r in _RECORDS if r.get("xfail")]
    if xfailed:
        lines.append(f"  expected failures (known findings): {', '.join(xfailed)}")
    return lines


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _RECORDS:
        return
    terminalreporter.section("robustness summary")
    for line in summary_lines():
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _RECORDS or os.environ.get(ENV) != "1" or hasattr(session.config, "workerinput"):
        return
    path = Path(session.config.rootpath) / "bench" / "robustness-last.txt"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    path.write_text(f"# written by tests/robustness/summary.py ({ENV}=1) at {stamp}\n" + "\n".join(summary_lines()) + "\n")
