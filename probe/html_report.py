"""``radius-probe run --html FILE`` and ``serve``'s ``/report``: one self-contained HTML page.

Built from the check records only (:meth:`probe.checks.CheckResult.to_dict`, the record ``run
--json`` writes), so the page says what every other output says. What it holds:

- the check matrix (rows: user; columns: target x method), an inline SVG whose cells carry the
  verdict as text and symbol as well as colour, each a link to the check's section;
- the comparison with a baseline (``run --baseline``), when there is one;
- per check: its facts, the diagnosis, the TLS facts (version, cipher, server certificate and its
  validation, chain, client certificate, resumption) and a timeline (inline SVG) of its rounds:
  each request, retransmission, challenge and the final answer, against the MFA window and the
  RADIUS timeout this client waited (timeout x (retries + 1), what the VPN server would wait).

No network fetch (no external CSS, fonts, images or scripts; a Content-Security-Policy of
``default-src 'none'`` says so to the browser too), no JavaScript (closed ``<details>`` hold the
long parts), and every value from a server (Reply-Message, certificate subjects, attribute
values) is HTML-escaped: a hostile server cannot put markup into the page.
"""

from __future__ import annotations

import html
import math
from collections import OrderedDict
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Sequence

from . import __version__
from .outcome import VERDICTS

if TYPE_CHECKING:
    from .baseline import Change, Comparison

__all__ = ["render_html"]

_SYMBOL = {"OK": "\u2713", "DEGRADED": "!", "FAILED": "\u2717", "UNKNOWN": "?"}
_FILL = {"OK": "#c8e6c9", "DEGRADED": "#ffe08a", "FAILED": "#f4a8a8", "UNKNOWN": "#cfd8dc"}
_STROKE = {"OK": "#2e7d32", "DEGRADED": "#9a6b00", "FAILED": "#b71c1c", "UNKNOWN": "#455a64"}
_CHANGE = {"worse": "\u25b2 worse", "better": "\u25bc better", "new": "new", "gone": "gone"}
_MAX_LANES = 24  # rounds drawn one per lane in the timeline; the rest are counted (the table has them all)

_CSS = """
*{box-sizing:border-box}
body{margin:0;padding:12px 16px;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1b;
 background:#fafafa;overflow-wrap:anywhere}
main{max-width:1240px;margin:0 auto}
h1{font-size:20px;margin:0 0 2px} h2{font-size:16px;margin:14px 0 6px} h3{font-size:15px;margin:0 0 6px}
p{margin:4px 0} .summary{color:#333}
svg{display:block;max-width:100%;height:auto}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
.legend span{display:inline-block;padding:0 6px;margin-right:6px;border:1px solid;border-radius:3px}
.check{background:#fff;border:1px solid #ddd;border-left:6px solid #999;border-radius:4px;padding:8px 12px;margin:10px 0}
.v-OK{border-left-color:#2e7d32} .v-DEGRADED{border-left-color:#c08a00} .v-FAILED{border-left-color:#b71c1c}
.v-UNKNOWN{border-left-color:#455a64}
.badge{display:inline-block;padding:0 6px;border-radius:3px;border:1px solid;font-weight:600}
dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:1px 12px;margin:4px 0}
dt{color:#555} dd{margin:0;min-width:0}
table{border-collapse:collapse;width:100%;table-layout:fixed;margin:4px 0}
th,td{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top;min-width:0}
th{background:#f0f0f0}
code{font-size:12px}
details{margin:4px 0} summary{cursor:pointer;color:#0b4f8a}
.diag li{margin:2px 0}
a{color:#0b4f8a}
"""


def _e(value: Any) -> str:
    """HTML-escaped text (quotes too: values go into attributes); control characters made visible."""
    text = str(value)
    if not text.isprintable():
        text = "".join(c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}" if ord(c) < 256
                       else f"\\u{ord(c):04x}" for c in text)
    return html.escape(text, quote=True)


def _attr(value: Any) -> str:
    """An attribute value as the JSON has it; octets ("0x..." hex) shown as text when they are printable ASCII."""
    text = str(value)
    if text.startswith("0x") and len(text) % 2 == 0:
        try:
            raw = bytes.fromhex(text[2:])
        except ValueError:
            return text
        if raw and raw.isascii() and raw.decode("ascii").isprintable():
            return raw.decode("ascii")
    return text


def _secs(value: Any) -> str:
    if value is None:
        return "-"
    v = float(value)
    return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _verdict(record: dict[str, Any]) -> str:
    v = str(record.get("verdict", "UNKNOWN"))
    return v if v in _FILL else "UNKNOWN"


def _badge(verdict: str) -> str:
    return (f'<span class="badge" style="background:{_FILL[verdict]};border-color:{_STROKE[verdict]}">'
            f'{_SYMBOL[verdict]} {verdict}</span>')


# ---------------------------------------------------------------------------
# The page


def render_html(records: Sequence[dict[str, Any]], *, comparison: Comparison | None = None,
                title: str = "radius-probe report", generated: datetime | None = None,
                notes: Sequence[str] = ()) -> str:
    """The whole page for these check records (``CheckResult.to_dict()``), optionally with a comparison."""
    generated = generated or datetime.now(timezone.utc)
    changes: dict[tuple[str, str], str] = ({(c.name, c.target): c.kind for c in comparison.changes}
                                          if comparison is not None else {})
    counts = {v: sum(1 for r in records if _verdict(r) == v) for v in VERDICTS.values()}
    summary = f"{len(records)} check(s): " + ", ".join(f"{n} {v}" for v, n in counts.items())
    if comparison is not None:
        summary += " \u00b7 against the baseline: " + comparison.counts_line() + (
            " (REGRESSED)" if comparison.regressed else "")
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>{_e(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>", "<main>",
        '<header id="top">', f"<h1>{_e(title)}</h1>",
        f'<p class="summary" id="summary">{_e(summary)} \u00b7 generated {_e(generated.strftime("%Y-%m-%d %H:%M:%S"))}'
        f" UTC by radius-probe {_e(__version__)}</p>", *(f'<p class="note">{_e(n)}</p>' for n in notes), "</header>",
        '<section id="matrix-section" aria-label="check matrix">', _matrix(records, changes), _legend(), "</section>",
    ]
    if comparison is not None:
        parts.append(_comparison(comparison))
    parts.append('<section id="checks"><h2>Checks</h2>')
    by_key = {(c.name, c.target): c for c in comparison.changes} if comparison is not None else {}
    parts += [_check(i, r, by_key.get((str(r.get("name")), str(r.get("target"))))) for i, r in enumerate(records)]
    parts += ["</section>", "</main>", "</body>", "</html>", ""]
    return "\n".join(parts)


def _legend() -> str:
    items = "".join(f'<span style="background:{_FILL[v]};border-color:{_STROKE[v]}">{_SYMBOL[v]} {v}</span>'
                    for v in VERDICTS.values())
    return (f'<p class="legend">{items} Each cell: verdict, result and final answer time of a check; '
            "rows are users, columns target \u00d7 method; a cell links to its check. Timelines: the MFA window, and "
            "the RADIUS timeout this client waited in all (timeout \u00d7 (retries + 1), as the VPN server "
            "would).</p>")


# ---------------------------------------------------------------------------
# The matrix: rows identity, columns (target, method)


def _matrix(records: Sequence[dict[str, Any]], changes: dict[tuple[str, str], str]) -> str:
    if not records:
        return "<p>No checks.</p>"
    rows: OrderedDict[str, None] = OrderedDict()
    cols: OrderedDict[tuple[str, str], None] = OrderedDict()
    cells: dict[tuple[str, tuple[str, str]], list[int]] = {}
    for i, r in enumerate(records):
        o = r.get("outcome") or {}
        user, col = str(o.get("identity", "?")), (str(r.get("target", "?")), str(o.get("method", "?")))
        rows.setdefault(user)
        cols.setdefault(col)
        cells.setdefault((user, col), []).append(i)
    col_list, row_list = list(cols), list(rows)
    label_w = min(220, 16 + 7 * max(len(u) for u in row_list))
    cell_w, line_h, pad = 156, 32, 4
    heights = [max(len(cells.get((u, c), [])) for c in col_list) * line_h + 2 * pad for u in row_list]
    head_h = 40
    width, height = label_w + cell_w * len(col_list), head_h + sum(heights)
    out = [f'<svg id="matrix" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" role="img" aria-label="check matrix: {len(records)} check(s)">',
           f"<title>check matrix: {len(records)} check(s), rows user, columns target x method</title>"]
    # column headers: target over method (a target spanning its methods)
    x = label_w
    spans: list[tuple[str, int, int]] = []
    for target, method in col_list:
        if spans and spans[-1][0] == target:
            spans[-1] = (target, spans[-1][1], spans[-1][2] + 1)
        else:
            spans.append((target, x, 1))
        out.append(f'<text x="{x + cell_w / 2:.0f}" y="34" text-anchor="middle" font-size="12">'
                   f"{_e(_cut(method, 22))}</text>")
        x += cell_w
    for target, x0, n in spans:
        out.append(f'<text x="{x0 + n * cell_w / 2:.0f}" y="15" text-anchor="middle" font-size="13" '
                   f'font-weight="600">{_e(_cut(target, 20 * n))}</text>')
        out.append(f'<line x1="{x0 + 4}" y1="20" x2="{x0 + n * cell_w - 4}" y2="20" stroke="#888"/>')
    y = head_h
    for user, h in zip(row_list, heights):
        out.append(f'<text x="6" y="{y + h / 2 + 4:.0f}" font-size="13"><title>{_e(user)}</title>'
                   f"{_e(_cut(user, (label_w - 12) // 7))}</text>")
        for ci, col in enumerate(col_list):
            cx = label_w + ci * cell_w
            indexes = cells.get((user, col), [])
            if not indexes:
                out.append(f'<rect x="{cx + 2}" y="{y + 2}" width="{cell_w - 4}" height="{h - 4}" fill="#f3f3f3" '
                           f'stroke="#e0e0e0"/><text x="{cx + cell_w / 2:.0f}" y="{y + h / 2 + 4:.0f}" '
                           f'text-anchor="middle" font-size="11" fill="#999">no check</text>')
            for k, i in enumerate(indexes):
                out.append(_cell(i, records[i], cx, y + pad + k * line_h, cell_w, line_h, changes))
        y += h
    out.append("</svg>")
    return "\n".join(out)


def _cell(i: int, r: dict[str, Any], x: float, y: float, w: float, h: float,
          changes: dict[tuple[str, str], str]) -> str:
    v, o = _verdict(r), r.get("outcome") or {}
    result = str(o.get("result", "?")) + (f"/{o['error_kind']}" if o.get("error_kind") else "")
    change = changes.get((str(r.get("name")), str(r.get("target"))))
    line1 = f"{_SYMBOL[v]} {v}" + (f"  {_CHANGE[change]}" if change in _CHANGE else "")
    line2 = f"{result} \u00b7 {_secs(o.get('final_response_s'))}"
    tip = f"{r.get('name')} @ {r.get('target')}: {v}, {result}"
    return (f'<a href="#check-{i}"><title>{_e(tip)}</title>'
            f'<rect x="{x + 2}" y="{y}" width="{w - 4}" height="{h - 2}" rx="3" fill="{_FILL[v]}" '
            f'stroke="{_STROKE[v]}"/>'
            f'<text x="{x + 8}" y="{y + 13}" font-size="12" font-weight="600" fill="#111">{_e(line1)}</text>'
            f'<text x="{x + 8}" y="{y + 26}" font-size="11" fill="#222">{_e(_cut(line2, 26))}</text></a>')


# ---------------------------------------------------------------------------
# The baseline comparison


def _comparison(comparison: Comparison) -> str:
    rows = comparison.listed()
    verdict = "REGRESSED: something got worse" if comparison.regressed else "no regression"
    out = ['<section id="baseline" aria-label="comparison with the baseline">',
           f"<h2>Against the baseline ({_e(verdict)})</h2>",
           f"<p>{_e(', '.join(comparison.baseline.paths))}: {_e(comparison.counts_line())}</p>"]
    if rows:
        out.append('<table><colgroup><col style="width:9%"><col style="width:18%"><col style="width:12%">'
                   '<col style="width:9%"><col style="width:9%"><col></colgroup>'
                   "<tr><th>change</th><th>check</th><th>target</th><th>before</th><th>now</th><th>what</th></tr>")
        for c in rows:
            out.append(f'<tr class="change-{_e(c.kind)}"><td>{_e(c.kind.upper())}</td><td>{_e(c.name)}</td>'
                       f"<td>{_e(c.target)}</td><td>{_e(c.before or '-')}</td><td>{_e(c.now or '-')}</td>"
                       f"<td>{_e('; '.join(c.reasons))}</td></tr>")
        out.append("</table>")
    out.append("</section>")
    return "\n".join(out)


# ---------------------------------------------------------------------------
# One check


def _check(i: int, r: dict[str, Any], change: Change | None) -> str:
    v, o = _verdict(r), r.get("outcome") or {}
    moved = change is not None and change.kind != "same"
    head = (f'<h3>{_badge(v)} {_e(r.get("name"))} @ {_e(r.get("target"))}'
            + (f" \u00b7 {_e(_CHANGE.get(change.kind, change.kind))}" if change is not None and moved else "")
            + "</h3>")
    result = str(o.get("result")) + (f" ({o.get('error_kind')}: {o.get('error_detail')})" if o.get("error_kind") else "")
    window = ("-" if o.get("result") not in ("accept", "reject", "challenge") else
              ("LATE (after the client's timeout)" if o.get("late") else
               "within" if o.get("within_window") else "OUTSIDE") + f" the {o.get('window_s', 60):g} s window")
    facts: list[tuple[str, Any]] = [
        *((("against the baseline", f"{change.kind}: " + "; ".join(change.reasons)),)
          if change is not None and moved else ()),
        ("server", o.get("target")), ("module", r.get("module")), ("method", o.get("method")),
        ("identity", o.get("identity")), ("expected", o.get("expected")), ("result", result),
        ("final answer", _secs(o.get("final_response_s"))),
        ("duration", f"{_secs(o.get('duration_s'))}, {o.get('round_trips', 0)} round trip(s), "
                     f"{o.get('retransmissions', 0)} retransmission(s)"),
        ("MFA window", window),
    ]
    if o.get("source"):
        facts.append(("from", o.get("source")))
    if o.get("reply_message") is not None:
        facts.append(("Reply-Message", o.get("reply_message")))
    attrs = {k: v for k, v in (o.get("reply_attributes") or {}).items() if k not in ("Reply-Message", "State")}
    if attrs:
        facts.append(("attributes", "; ".join(f"{k}={', '.join(map(_attr, vals))}" for k, vals in attrs.items())))
    if o.get("message_authenticator"):
        facts.append(("Message-Authenticator", o.get("message_authenticator")))
    if o.get("tls") is not None or o.get("mppe") not in (None, "absent") or o.get("cryptobinding") not in (None, "absent"):
        facts.append(("keys", f"MPPE {o.get('mppe')}, cryptobinding {o.get('cryptobinding')}"))
    for label, key in (("failure", "failures"), ("degraded", "degraded")):
        facts += [(label, item) for item in r.get(key) or []]
    facts += [("warning", w) for w in o.get("warnings") or []]
    labels = r.get("labels") or {}
    if labels:
        facts.append(("labels", ", ".join(f"{k}={v}" for k, v in labels.items())))
    out = [f'<article class="check v-{v}" id="check-{i}">', head,
           "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(val)}</dd>" for k, val in facts) + "</dl>",
           _timeline(i, o), _diagnosis(o), _tls(o.get("tls")), _rounds_table(o),
           '<p><a href="#top">back to the matrix</a></p>', "</article>"]
    return "\n".join(part for part in out if part)


def _diagnosis(o: dict[str, Any]) -> str:
    items = o.get("diagnosis") or []
    if not items:
        return ""
    lis = "".join(f"<li><code>{_e(d.get('code'))}</code> {_e(d.get('text', ''))}</li>" for d in items)
    return f'<div class="diag"><strong>Diagnosis</strong><ul>{lis}</ul></div>'


def _cert_rows(prefix: str, cert: dict[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [(f"{prefix} subject", cert.get("subject")), (f"{prefix} issuer", cert.get("issuer")),
                                   (f"{prefix} not after", cert.get("not_after"))]
    if cert.get("san_dns"):
        rows.append((f"{prefix} DNS names", ", ".join(map(str, cert["san_dns"]))))
    for key in ("upn", "san_upn"):
        if cert.get(key):
            rows.append((f"{prefix} UPN", cert[key]))
    if cert.get("sha256"):
        rows.append((f"{prefix} SHA-256", cert.get("sha256")))
    return rows


def _tls(tls: Any) -> str:
    if not isinstance(tls, dict):
        return ""
    rows: list[tuple[str, Any]] = [("version", tls.get("version")), ("cipher", tls.get("cipher"))]
    if "validation" in tls:
        rows.append(("server certificate validation", tls.get("validation")))
    if isinstance(tls.get("server_cert"), dict):
        rows += _cert_rows("server", tls["server_cert"])
    if isinstance(tls.get("client_cert"), dict):
        rows += _cert_rows("client", tls["client_cert"])
    resumption = tls.get("resumption")
    if isinstance(resumption, dict):
        rows.append(("resumption", ", ".join(f"{k} {v}" for k, v in resumption.items())))
    elif "resumed" in tls:
        rows.append(("resumed", tls.get("resumed")))
    rows += [("TLS warning", w) for w in tls.get("warnings") or []]
    chain = [c for c in tls.get("chain") or [] if isinstance(c, dict)]
    body = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows if v is not None)
    chain_html = ""
    if chain:
        items = "".join(f"<li>{_e(c.get('subject'))} (issuer {_e(c.get('issuer'))}, until {_e(c.get('not_after'))})</li>"
                        for c in chain)
        chain_html = f"<details><summary>certificate chain ({len(chain)})</summary><ol>{items}</ol></details>"
    return f'<div class="tls"><strong>TLS</strong><dl>{body}</dl>{chain_html}</div>'


def _rounds_table(o: dict[str, Any]) -> str:
    attempts = [a for a in o.get("attempts") or [] if isinstance(a, dict)]
    if not attempts:
        return ""
    rows = []
    for a in attempts:
        kind = f"retransmission {a.get('retransmission')}" if a.get("retransmission") else "request"
        answer = a.get("code") or "no answer"
        if a.get("late"):
            answer += " (late)"
        took = "-" if a.get("answered_s") is None else _secs(float(a["answered_s"]) - float(a.get("sent_s") or 0))
        rows.append(f"<tr><td>{_e(a.get('round'))}</td><td>{_e(kind)}</td><td>{_e(_secs(a.get('sent_s')))}</td>"
                    f"<td>{_e(_secs(a.get('answered_s')))}</td><td>{_e(took)}</td><td>{_e(answer)}</td></tr>")
    return (f"<details><summary>rounds ({len(attempts)} transmission(s))</summary><table>"
            "<tr><th>round</th><th>sent as</th><th>sent at</th><th>answered at</th><th>took</th><th>answer</th></tr>"
            + "".join(rows) + "</table></details>")


# ---------------------------------------------------------------------------
# The timeline


def _tick_step(span: float) -> float:
    raw = span / 6
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)


def _answer_colour(code: str | None) -> str:
    if code is None:
        return "#9e9e9e"
    return {"Access-Accept": "#2e7d32", "Access-Reject": "#b71c1c", "Access-Challenge": "#1565c0"}.get(code, "#6a1b9a")


def _timeline(i: int, o: dict[str, Any]) -> str:
    """Strip 1: the conversation against the MFA window and the RADIUS timeout; strip 2: its rounds."""
    attempts = [a for a in o.get("attempts") or [] if isinstance(a, dict)]
    window = float(o.get("window_s") or 60)
    timeout = o.get("client_timeout_s")
    duration = float(o.get("duration_s") or 0)
    ends = [float(a["answered_s"]) for a in attempts if a.get("answered_s") is not None]
    last = max(ends + [duration, 0.0])
    span = max(window, float(timeout or 0), last) * 1.05
    W, left, right = 1000, 10, 10
    plot = W - left - right

    def sx(t: float, scale: float) -> float:
        return left + plot * min(max(t, 0.0), scale) / scale

    out = [f'<svg class="timeline" id="timeline-{i}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} VIEWH" '
           f'width="{W}" height="VIEWH" role="img" aria-label="timeline of the rounds">',
           "<title>timeline: the conversation against the MFA window and the RADIUS timeout</title>"]
    y = 14
    out.append(f'<text x="{left}" y="{y}" font-size="12" font-weight="600">whole conversation, 0 to '
               f"{_e(_secs(span))}</text>")
    y += 8
    axis_y = y + 22
    step = _tick_step(span)
    t = 0.0
    while t <= span + 1e-9:
        x = sx(t, span)
        out.append(f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}" stroke="#777"/>'
                   f'<text x="{x:.1f}" y="{axis_y + 15}" font-size="10" text-anchor="middle" fill="#555">'
                   f"{t:g} s</text>")
        t += step
    out.append(f'<line x1="{left}" y1="{axis_y}" x2="{W - right}" y2="{axis_y}" stroke="#777"/>')
    # the conversation's bar, then the markers
    out.append(f'<rect x="{left}" y="{y + 6}" width="{max(sx(last, span) - left, 2):.1f}" height="10" '
               f'fill="#90caf9"><title>the conversation: {_e(_secs(last))}</title></rect>')
    markers = [(window, f"MFA window {window:g} s", "#c62828")]
    if timeout:
        markers.append((float(timeout), f"RADIUS timeout {float(timeout):g} s", "#6d4c41"))
    for k, (at, label, colour) in enumerate(markers):
        x = sx(at, span)
        anchor = "end" if x > W / 2 else "start"
        dx = -3 if anchor == "end" else 3
        out.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{axis_y}" stroke="{colour}" stroke-width="2" '
                   f'stroke-dasharray="{"4 2" if k else "none"}"/>'
                   f'<text x="{x + dx:.1f}" y="{y + 4 + 9 * k}" font-size="10" fill="{colour}" '
                   f'text-anchor="{anchor}">{_e(label)}</text>')
    final = next((a for a in reversed(attempts) if a.get("answered_s") is not None), None)
    if final is not None:
        x = sx(float(final["answered_s"]), span)
        out.append(f'<circle cx="{x:.1f}" cy="{y + 11}" r="5" fill="{_answer_colour(final.get("code"))}">'
                   f'<title>{_e(final.get("code"))} at {_e(_secs(final["answered_s"]))}</title></circle>')
    y = axis_y + 24
    # strip 2: the rounds, on the conversation's own scale
    if attempts:
        scale = max(last, 1e-3) * 1.08
        lanes = attempts[:_MAX_LANES]
        out.append(f'<text x="{left}" y="{y + 10}" font-size="12" font-weight="600">rounds, 0 to '
                   f"{_e(_secs(scale))} (request \u2192 answer; retransmissions hatched)</text>")
        y += 18
        label_x = W - right - 280
        plot_end = label_x - 10

        def rx(t: float) -> float:
            return left + (plot_end - left) * min(max(t, 0.0), scale) / scale

        for a in lanes:
            sent = float(a.get("sent_s") or 0)
            answered = a.get("answered_s")
            end = float(answered) if answered is not None else min(last, scale)
            colour = _answer_colour(a.get("code"))
            retx = bool(a.get("retransmission"))
            x0, x1 = rx(sent), max(rx(end), rx(sent) + 2)
            what = (f"retransmission {a.get('retransmission')}" if retx else "request")
            answer = (a.get("code") or "no answer") + (" LATE" if a.get("late") else "")
            text = f"round {a.get('round')} {what}: {answer}" + (
                f" after {_secs(float(answered) - sent)}" if answered is not None else "")
            out.append(f'<g><title>{_e(text)}</title>'
                       f'<line x1="{left}" y1="{y + 6}" x2="{plot_end}" y2="{y + 6}" stroke="#eee"/>'
                       f'<rect x="{x0:.1f}" y="{y + 1}" width="{x1 - x0:.1f}" height="10" fill="{colour}" '
                       f'fill-opacity="{0.45 if retx or answered is None else 0.85}" stroke="{colour}" '
                       f'stroke-dasharray="{"3 2" if retx else "none"}"/>'
                       f'<text x="{label_x}" y="{y + 10}" font-size="10" fill="#333">{_e(_cut(text, 54))}</text></g>')
            y += 14
        if len(attempts) > len(lanes):
            out.append(f'<text x="{left}" y="{y + 10}" font-size="10" fill="#555">\u2026 and '
                       f"{len(attempts) - len(lanes)} more transmission(s), in the rounds table</text>")
            y += 14
    height = y + 6
    out.append("</svg>")
    return "\n".join(out).replace("VIEWH", str(height))
