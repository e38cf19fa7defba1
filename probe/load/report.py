"""A load run's report: the console summary, the live line, JSON, and a self-contained HTML page.

The HTML page has no external resource (no script, font or stylesheet from
elsewhere): a latency histogram and a rate/latency-over-time plot drawn as
inline SVG from the run's HDR histograms and its per-second time series.
"""

from __future__ import annotations

import html
import json
import math
import time
from typing import Any

from ..outcome import RESULTS
from .run import LoadResult
from .stats import PERCENTILES, summary

__all__ = ["live_line", "text_report", "load_dict", "html_report"]

SCHEMA = 1


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.2f} s"


def live_line(r: LoadResult, elapsed: float) -> str:
    s = r.stats
    rate = s.finished / elapsed if elapsed > 0 else 0.0
    results = " ".join(f"{k} {s.results[k]}" for k in RESULTS if s.results.get(k))
    return (f"radius-probe load: {elapsed:.0f} s, {s.started} started, {s.in_flight} in flight, "
            f"{rate:.0f}/s done; {results or 'no answer yet'}; unmet {s.finished - s.met}; "
            f"p50 {_ms(s.percentile(50))} p99 {_ms(s.percentile(99))}")


def text_report(r: LoadResult) -> str:
    s = r.stats
    p = r.plan
    lines = [f"load: {p.method} against {p.check.target.address}, {r.elapsed_s:.1f} s: {s.started} started, "
             f"{s.finished} finished, {s.met} met the expectation ({p.check.expect.result}), "
             f"{s.finished - s.met} did not" + (f", {s.skipped} arrivals skipped (in-flight cap)" if s.skipped else "")
             + f"; peak {s.peak_in_flight} in flight"]
    lines.append("results: " + (", ".join(f"{k} {s.results[k]}" for k in RESULTS if s.results.get(k)) or "none")
                 + "; verdicts: " + (", ".join(f"{k} {v}" for k, v in sorted(s.verdicts.items())) or "none"))
    if s.error_kinds:
        lines.append("errors: " + ", ".join(f"{k} {v}" for k, v in s.error_kinds.most_common()))
    head = "time to final answer " + " ".join(f"{'p%g' % q if q < 100 else 'max':>9}" for q in PERCENTILES)
    lines.append(head + f" {'count':>8}")
    for name, hist in [("all", s.all)] + [(k, s.by_result[k]) for k in RESULTS if k in s.by_result]:
        if not hist.get_total_count():
            continue
        cells = [_ms(hist.get_value_at_percentile(q) / 1e6) for q in PERCENTILES]
        lines.append(f"  {name:<19}" + " ".join(f"{c:>9}" for c in cells) + f" {hist.get_total_count():>8}")
    lines.append(f"datagrams: {r.sent} sent ({s.retransmissions} retransmissions), {r.received} received, "
                 f"over {r.sockets} source port(s)")
    d = r.kernel_delta
    if d is not None and r.kernel_before is not None and r.kernel_after is not None:
        lines.append(f"kernel UDP RcvbufErrors (this host): {r.kernel_before.rcvbuf_errors} before, "
                     f"{r.kernel_after.rcvbuf_errors} after (delta {d.rcvbuf_errors})")
    if r.grant is not None:
        lines.append(f"socket buffers: SO_RCVBUF {r.grant.rcvbuf}, SO_SNDBUF {r.grant.sndbuf} bytes "
                     f"(asked {r.grant.asked})")
    for text, count in s.failures.most_common(5):
        lines.append(f"  unmet x{count}: {text}")
    return "\n".join(lines)


def load_dict(r: LoadResult) -> dict[str, Any]:
    p = r.plan
    d = r.kernel_delta
    policy = p.check.module.policy
    return {
        "schema": SCHEMA, "kind": "load",
        "target": p.check.target.address, "method": p.method, "expected": p.check.expect.result,
        "plan": {"rate": p.rate, "concurrency": p.concurrency, "ramp_s": p.ramp_s, "duration_s": p.duration_s,
                 "count": p.count, "pace": p.pace, "users": p.users.distinct, "users_source": p.users.source,
                 "timeout_s": policy.timeout_s, "retries": policy.retries, "deadline_s": policy.total_deadline_s},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.started_at)),
        "elapsed_s": round(r.elapsed_s, 3), "aborted": r.aborted, "exit_code": r.exit_code,
        **r.stats.as_dict(),
        "datagrams": {"sent": r.sent, "received": r.received, "retransmitted": r.stats.retransmissions,
                      "source_ports": r.sockets},
        "kernel": {"before": r.kernel_before.as_dict() if r.kernel_before else None,
                   "after": r.kernel_after.as_dict() if r.kernel_after else None,
                   "delta": d.as_dict() if d else None},
        "socket_buffers": ({"asked": r.grant.asked, "rcvbuf": r.grant.rcvbuf, "sndbuf": r.grant.sndbuf}
                           if r.grant else None),
        "warnings": list(r.warnings),
        "timeline": r.stats.timeline(),
    }


# -- HTML ----------------------------------------------------------------------------

_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}
.warn{color:#a40}.bad{color:#b00}svg{background:#fafafa;border:1px solid #ddd;margin:.5em 0}
svg text{font:11px system-ui,sans-serif;fill:#444}"""


def _svg_histogram(r: LoadResult, width: int = 760, height: int = 240) -> str:
    """Latency histogram (log-spaced buckets) of the time to final answer, one bar per bucket."""
    h = r.stats.all
    n = h.get_total_count()
    if not n:
        return "<p>no authentication finished</p>"
    lo, hi = max(h.get_min_value(), 1), max(h.get_max_value(), 2)
    bins = 40
    if hi <= lo * 1.01:
        lo, hi = lo * 0.9, hi * 1.1
    edges = [lo * (hi / lo) ** (i / bins) for i in range(bins + 1)]
    counts = [0] * bins
    span = math.log(hi / lo)
    for item in h.get_recorded_iterator():  # one pass over the recorded values (the counts array is large)
        v = item.value_iterated_to
        i = min(bins - 1, max(0, int(math.log(max(v, lo) / lo) / span * bins))) if span > 0 else 0
        counts[i] += item.count_at_value_iterated_to
    top = max(counts) or 1
    left, bottom = 50, 30
    bw = (width - left - 10) / bins
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="latency histogram">']
    for i, c in enumerate(counts):
        bh = (height - bottom - 10) * c / top
        x = left + i * bw
        parts.append(f'<rect x="{x:.1f}" y="{height - bottom - bh:.1f}" width="{max(bw - 1, 1):.1f}" '
                     f'height="{bh:.1f}" fill="#4a7ebb"><title>{_ms(edges[i] / 1e6)} - {_ms(edges[i + 1] / 1e6)}: '
                     f'{c}</title></rect>')
    for i in range(0, bins + 1, 8):
        x = left + i * bw
        parts.append(f'<text x="{x:.1f}" y="{height - 12}" text-anchor="middle">{_ms(edges[i] / 1e6)}</text>')
    parts.append(f'<text x="5" y="15">{top}</text><text x="5" y="{height - bottom}">0</text>')
    for q, colour in ((50, "#2a2"), (99, "#c60")):
        v = h.get_value_at_percentile(q)
        x = left + (math.log(max(v, lo) / lo) / math.log(hi / lo)) * (width - left - 10)
        parts.append(f'<line x1="{x:.1f}" y1="10" x2="{x:.1f}" y2="{height - bottom}" stroke="{colour}" '
                     f'stroke-dasharray="4 3"/><text x="{x + 3:.1f}" y="22" fill="{colour}">p{q}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _svg_timeline(r: LoadResult, width: int = 760, height: int = 260) -> str:
    """Per second: finished authentications (bars, left axis) and p50/p99 time to final answer (lines, right)."""
    rows = r.stats.timeline()
    if not rows:
        return "<p>no time series</p>"
    left, right, bottom = 50, 60, 30
    n = len(rows)
    rate_top = max(max(row["finished"] for row in rows), max(row["started"] for row in rows), 1)
    lat_top = max([row.get("p99_s", 0.0) for row in rows] + [1e-3])
    bw = (width - left - right) / n
    plot_h = height - bottom - 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="rate and latency over time">']
    for i, row in enumerate(rows):
        bh = plot_h * row["finished"] / rate_top
        parts.append(f'<rect x="{left + i * bw:.1f}" y="{10 + plot_h - bh:.1f}" width="{max(bw - 1, 1):.1f}" '
                     f'height="{bh:.1f}" fill="#9bc"><title>{row["t"]} s: {row["started"]} started, '
                     f'{row["finished"]} finished, {row["failed"]} unmet</title></rect>')
        if row["failed"]:
            fh = plot_h * row["failed"] / rate_top
            parts.append(f'<rect x="{left + i * bw:.1f}" y="{10 + plot_h - fh:.1f}" width="{max(bw - 1, 1):.1f}" '
                         f'height="{fh:.1f}" fill="#d55"/>')
    for key, colour in (("p50_s", "#2a2"), ("p99_s", "#c60")):
        points = [f"{left + (i + 0.5) * bw:.1f},{10 + plot_h - plot_h * row[key] / lat_top:.1f}"
                  for i, row in enumerate(rows) if key in row]
        if points:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(points)}"/>')
    parts.append(f'<text x="5" y="15">{rate_top}/s</text><text x="{width - right + 5}" y="15">{_ms(lat_top)}</text>')
    parts.append(f'<text x="{width - right + 5}" y="35" fill="#2a2">p50</text>'
                 f'<text x="{width - right + 5}" y="50" fill="#c60">p99</text>')
    for i in range(0, n, max(1, n // 8)):
        parts.append(f'<text x="{left + i * bw:.1f}" y="{height - 12}">{rows[i]["t"]} s</text>')
    parts.append("</svg>")
    return "".join(parts)


def html_report(r: LoadResult) -> str:
    d = load_dict(r)
    e = html.escape
    s = r.stats
    rows = []
    for name, hist in [("all", s.all)] + [(k, s.by_result[k]) for k in RESULTS if k in s.by_result]:
        sm = summary(hist)
        if not sm["count"]:
            continue
        cells = "".join(f"<td>{e(_ms(sm.get(f'p{q:g}_s', sm['max_s'] if q == 100 else None)))}</td>" for q in PERCENTILES)
        rows.append(f"<tr><td>{e(name)}</td><td>{sm['count']}</td>{cells}</tr>")
    heads = "".join(f"<th>{'p%g' % q if q < 100 else 'max'}</th>" for q in PERCENTILES)
    warnings = "".join(f'<p class="warn">{e(w)}</p>' for w in r.warnings)
    aborted = f'<p class="bad">stopped early: {e(r.aborted)}</p>' if r.aborted else ""
    counts = "".join(f"<tr><td>{e(k)}</td><td>{v}</td></tr>" for k, v in
                     [*(("result " + k, s.results[k]) for k in RESULTS if s.results.get(k)),
                      *(("verdict " + k, v) for k, v in sorted(s.verdicts.items())),
                      *(("error " + k, v) for k, v in s.error_kinds.most_common())])
    dg = d["datagrams"]
    embedded = json.dumps(d).replace("</", "<\\/")  # the JSON report, for scripts reading the page
    kd = d["kernel"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>radius-probe load: {e(d['target'])}</title>
<style>{_CSS}</style></head><body>
<h1>radius-probe load: {e(d['method'])} against {e(d['target'])}</h1>
<p>{e(r.plan.describe())}</p>
<p>started {e(d['started_at'])}, {d['elapsed_s']} s; {s.started} started, {s.finished} finished,
<b>{s.met}</b> met the expectation ({e(d['expected'])}), <b class="{'bad' if s.finished - s.met else ''}">{s.finished - s.met}</b>
did not; peak {s.peak_in_flight} in flight; exit code {r.exit_code}.</p>
{aborted}{warnings}
<h2>Time to final answer</h2>
<table><tr><th>result</th><th>count</th>{heads}</tr>{''.join(rows)}</table>
{_svg_histogram(r)}
<h2>Rate and latency over time</h2>
<p>bars: authentications finished per second (red: expectation unmet); lines: p50 and p99 of those finishing.</p>
{_svg_timeline(r)}
<h2>Counts</h2>
<table>{counts}
<tr><td>datagrams sent</td><td>{dg['sent']}</td></tr><tr><td>datagrams received</td><td>{dg['received']}</td></tr>
<tr><td>retransmissions</td><td>{dg['retransmitted']}</td></tr><tr><td>source ports</td><td>{dg['source_ports']}</td></tr>
<tr><td>kernel RcvbufErrors delta (host)</td><td>{e(str((kd['delta'] or {}).get('rcvbuf_errors')))}</td></tr>
</table>
<script type="application/json" id="load-json">{embedded}</script>
</body></html>
"""
