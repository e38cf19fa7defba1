"""What a load run measured: HDR histograms of the time to the final answer, counts, a time series.

Times are recorded in microseconds in ``hdrhistogram`` (4 significant digits, up
to one hour), one histogram per result (accept, reject, challenge, discard,
error) and one over all, so p50/p99/p99.9 are exact to 0.01% however many
authentications ran.  The time series keeps, per second of the run, how many
started and finished, and the latencies of those that finished (for the HTML
plot), in a small histogram of its own.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from ..outcome import RESULTS, Outcome

__all__ = ["LoadStats", "PERCENTILES", "new_histogram"]

PERCENTILES = (50.0, 90.0, 99.0, 99.9, 100.0)
_MAX_US = 3600 * 1_000_000


def new_histogram() -> HdrHistogram:
    """Microseconds, 1 us .. 1 h, 4 significant digits (1 ms steps at a 30 s hold; 3 digits would be 16 ms)."""
    return HdrHistogram(1, _MAX_US, 4, word_size=4)


def _record(h: HdrHistogram, seconds: float) -> None:
    h.record_value(min(_MAX_US, max(1, int(round(seconds * 1_000_000)))))


def summary(h: HdrHistogram) -> dict[str, Any]:
    """count, min, mean, max and the PERCENTILES of ``h`` in seconds."""
    n = h.get_total_count()
    if n == 0:
        return {"count": 0}
    out: dict[str, Any] = {"count": n, "min_s": h.get_min_value() / 1e6, "mean_s": round(h.get_mean_value() / 1e6, 6),
                           "max_s": h.get_max_value() / 1e6}
    for p in PERCENTILES[:-1]:
        out[f"p{p:g}_s"] = h.get_value_at_percentile(p) / 1e6
    return out


@dataclass
class Second:
    """One second of the run: starts, completions and their latencies."""

    started: int = 0
    finished: int = 0
    failed: int = 0
    latency: HdrHistogram = field(default_factory=lambda: HdrHistogram(100, _MAX_US, 2))  # small: one a second


@dataclass
class LoadStats:
    started: int = 0
    finished: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    skipped: int = 0  # open-loop arrivals not started: the in-flight cap was reached
    met: int = 0
    results: Counter[str] = field(default_factory=Counter)
    verdicts: Counter[str] = field(default_factory=Counter)
    error_kinds: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)  # the judge's first failure line, by text (capped)
    retransmissions: int = 0
    round_trips: int = 0
    all: HdrHistogram = field(default_factory=new_histogram)
    by_result: dict[str, HdrHistogram] = field(default_factory=dict)
    seconds: list[Second] = field(default_factory=list)
    answered: int = 0  # authentications that got any answer at all (for the no-answer check)

    def _second(self, t: float) -> Second:
        index = max(0, int(t))
        while len(self.seconds) <= index:
            self.seconds.append(Second())
        return self.seconds[index]

    def start(self, t: float) -> None:
        self.started += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        self._second(t).started += 1

    def finish(self, o: Outcome, verdict: str, failure: str | None, t: float) -> None:
        """Count a judged Outcome that ended ``t`` seconds into the run."""
        self.in_flight -= 1
        self.finished += 1
        self.results[o.result] += 1
        self.verdicts[verdict] += 1
        self.retransmissions += o.retransmissions
        self.round_trips += o.round_trips
        if o.error_kind is not None:
            self.error_kinds[str(o.error_kind)] += 1
        if o.expectation_met:
            self.met += 1
        elif failure is not None and (failure in self.failures or len(self.failures) < 20):
            self.failures[failure] += 1
        if o.final_response_s is not None or o.attempts and any(a.answered_s is not None for a in o.attempts):
            self.answered += 1
        # Time to the final answer; an unanswered one is measured to its end (a discard waited that long).
        seconds = o.final_response_s if o.final_response_s is not None else o.duration_s
        _record(self.all, seconds)
        if o.result not in self.by_result:
            self.by_result[o.result] = new_histogram()
        _record(self.by_result[o.result], seconds)
        sec = self._second(t)
        sec.finished += 1
        if not o.expectation_met:
            sec.failed += 1
        _record(sec.latency, seconds)

    def percentile(self, p: float) -> float | None:
        return self.all.get_value_at_percentile(p) / 1e6 if self.all.get_total_count() else None

    def as_dict(self) -> dict[str, Any]:
        by_result = {r: summary(self.by_result[r]) for r in RESULTS if r in self.by_result}
        return {
            "started": self.started, "finished": self.finished, "expectation_met": self.met,
            "expectation_unmet": self.finished - self.met, "skipped": self.skipped,
            "peak_in_flight": self.peak_in_flight,
            "results": dict(self.results), "verdicts": dict(self.verdicts), "error_kinds": dict(self.error_kinds),
            "failures": [{"text": k, "count": v} for k, v in self.failures.most_common()],
            "round_trips": self.round_trips, "retransmissions": self.retransmissions,
            "final_response": {"all": summary(self.all), **by_result},
        }

    def timeline(self) -> list[dict[str, Any]]:
        rows = []
        for i, sec in enumerate(self.seconds):
            row: dict[str, Any] = {"t": i, "started": sec.started, "finished": sec.finished, "failed": sec.failed}
            if sec.latency.get_total_count():
                row["p50_s"] = sec.latency.get_value_at_percentile(50) / 1e6
                row["p99_s"] = sec.latency.get_value_at_percentile(99) / 1e6
                row["max_s"] = sec.latency.get_max_value() / 1e6
            rows.append(row)
        return rows
