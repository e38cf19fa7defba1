"""Human-readable renderings of Outcomes (they read the Outcome; none re-derive it)."""

from __future__ import annotations

import json
import shutil
import textwrap
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Sequence

from .methods import METHODS
from .outcome import VERDICTS, Outcome

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

    from .checks import CheckResult, Progress


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def _value(value: object) -> str:
    """Octets as text when printable (Class is usually a group name), else 0x hex."""
    if isinstance(value, bytes):
        return value.decode("ascii") if value.isascii() and value.decode("ascii").isprintable() else "0x" + value.hex()
    return str(value)


def _window_cell(o: Outcome) -> str:
    """in / out / late for an answer; - when nothing (or nothing valid) answered the final round."""
    if o.result not in ("accept", "reject", "challenge"):
        return "-"
    return "late" if o.late else ("in" if o.within_window else "out")


def verdict(o: Outcome) -> str:
    return VERDICTS[o.exit_code]


def _dur(value: float | None) -> str:
    """A duration a person reads: milliseconds below 0.1 s (never a bare 0.000 s), else seconds."""
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 0.1 else f"{value:.3f} s"


def _final_round_wait(o: Outcome) -> float:
    """How long this probe waited for the final round's answer: from its first send to the end."""
    final = [a for a in o.attempts if a.round == o.round_trips]
    return max(0.0, o.duration_s - final[0].sent_s) if final else o.duration_s


def _stopped_by_us(o: Outcome) -> bool:
    """An error after the server answered the last request: our side ended the conversation."""
    return o.result == "error" and bool(o.attempts) and o.attempts[-1].answered_s is not None


def _date(text: object) -> str:
    return str(text)[:10] if text else "?"


def _tls_lines(tls: dict[str, object]) -> list[tuple[str, str]]:
    """TLS version, server certificate and its validation, resumption, the client certificate's days left."""
    rows: list[tuple[str, str]] = []
    if tls.get("version"):
        line = f"{tls['version']}, {tls.get('cipher') or '?'}, "
        line += "session resumed" if tls.get("resumed") else "full handshake"
        resumption = tls.get("resumption")
        if isinstance(resumption, dict):
            line += ("; fast reconnect: the server resumed the first session" if resumption.get("resumed")
                     else "; fast reconnect: offered, NOT resumed")
        rows.append(("TLS", line))
    server = tls.get("server_cert")
    if isinstance(server, dict):
        names = server.get("san_dns") or []
        line = (f"{server.get('subject', '?')}, issuer {server.get('issuer', '?')}, "
                f"until {_date(server.get('not_after'))}" + (f", DNS {', '.join(map(str, names))}" if names else ""))
        rows.append(("Server cert", line))
    if tls.get("validation"):
        rows.append(("Validation", str(tls["validation"])))
    client = tls.get("client_cert")
    if isinstance(client, dict):
        days = client.get("days_left")
        left = f"{days} day(s) left" if isinstance(days, int) and days >= 0 else "EXPIRED"
        rows.append(("Client cert", f"{client.get('subject', '?')}, until {_date(client.get('not_after'))}: {left}"))
    return rows


def summary(o: Outcome, width: int | None = None) -> str:
    """The one-screen answer of ``radius-probe auth`` (a judged Outcome: its verdict is the exit code's),
    wrapped to ``width`` (the terminal's by default)."""
    rows: list[tuple[str, str]] = []
    result = o.result.upper() + (f" ({o.error_kind}: {o.error_detail})" if o.error_kind else "")
    rows.append(("Result", result))
    rows.append(("Expected", f"{o.expected}: {'met' if o.expectation_met else 'NOT met'}  [{verdict(o)}]"))
    counts = f"{o.round_trips} round trip(s), {o.retransmissions} retransmission(s)"
    if _stopped_by_us(o):
        last = o.attempts[-1]
        rows.append(("Time", f"this probe ended the conversation after {_dur(o.duration_s)}, in round {last.round} "
                             f"({counts}; the server's last answer took {_dur(o.final_response_s)})"))
    else:
        rows.append(("Time", f"final answer {_dur(o.final_response_s)}, total {_dur(o.duration_s)}, {counts}"))
    if o.result in ("accept", "reject", "challenge"):
        window = "within" if o.within_window else "OUTSIDE"
        line = f"{window} the {o.window_s:g} s window"
        if o.late:
            line += f"; LATE: after this client's {o.client_timeout_s:g} s timeout"
        rows.append(("MFA window", line))
    elif _stopped_by_us(o):
        rows.append(("MFA window", "not reached: the conversation ended on our side before a final answer"))
    else:
        what = "answer" if o.result == "discard" else "valid answer"
        rows.append(("MFA window", f"no {what} in the {_final_round_wait(o):.1f} s this probe waited for the final "
                                   f"request (the window is {o.window_s:g} s)"))
    if o.reply_message:
        rows.append(("Reply-Message", repr(o.reply_message)))
    shown = {k: v for k, v in o.reply_attributes.items() if k not in ("Reply-Message", "State")}
    if shown:
        rows.append(("Attributes", "; ".join(f"{k}={', '.join(map(_value, v))}" for k, v in shown.items())))
    if o.message_authenticator:
        rows.append(("Msg-Auth", f"{o.message_authenticator} in the reply"))
    if o.transport:
        t = o.transport
        cert = (t.get("server_cert") or {}).get("subject", "no certificate")
        rows.append(("Transport", f"RadSec {t.get('tls_version') or 'no TLS'} {t.get('cipher') or ''} to {t['peer']}, "
                     f"server {cert}, client certificate {'sent' if t.get('client_certificate_sent') else 'NOT sent'}"))
    if o.accounting:
        acked = ", ".join(o.accounting["acknowledged"]) or "none"
        rows.append(("Accounting", f"session {o.accounting['session_id']}: acknowledged {acked}"))
    method = METHODS.get(o.method)
    if method is not None and method.eap:
        if o.tls:
            rows += _tls_lines(o.tls)
        rows.append(("Keys", f"mppe {o.mppe}, cryptobinding {o.cryptobinding}"))
    rows += [("Degraded", item) for item in o.degraded]
    rows += [("Warning", item) for item in o.warnings]
    rows += [("Diagnosis", f"[{d['code']}] {d['text']}") for d in o.diagnosis]
    width = max(width or shutil.get_terminal_size((100, 24)).columns, 40)
    lines = [f"{o.method} {o.identity!r} -> {o.target}" + (f" from {o.source}" if o.source else "")]
    for label, text in rows:
        lines += textwrap.wrap(text, width=width, initial_indent=f"  {label:<14}", subsequent_indent=" " * 16,
                               break_on_hyphens=False, break_long_words=False) or [f"  {label}"]
    return "\n".join(lines)


def table(rows: Sequence[tuple[str, Outcome]]) -> str:
    """A table of (case name, Outcome) with the diagnosis for each failure below it."""
    head = ("case", "method", "identity", "expected", "result", "final", "rounds", "window", "verdict", "diagnosis")
    body = []
    for name, o in rows:
        result = o.result + (f"/{o.error_kind}" if o.error_kind else "")
        window = _window_cell(o)
        codes = ",".join(str(d["code"]) for d in o.diagnosis) or "-"
        body.append((name, o.method, o.identity, o.expected, result,
                     "-" if o.final_response_s is None else f"{o.final_response_s:.2f}s",
                     str(o.round_trips), window, verdict(o), codes))
    widths = [max(len(str(r[i])) for r in [head, *body]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head)]
    out.append(fmt.format(*("-" * w for w in widths)))
    out += [fmt.format(*r) for r in body]
    return "\n".join(out)


# ---------------------------------------------------------------------------
# `radius-probe run`: reports over CheckResults (from probe.checks)


def check_table(results: Sequence[CheckResult]) -> str:
    """The console report of ``run``: one row per check, then the reasons for every non-OK check."""
    head = ("check", "target", "module", "expected", "result", "time", "window", "verdict", "diagnosis")
    body = []
    for r in results:
        o = r.outcome
        body.append((r.check.name, r.check.target.name, r.check.module.name, r.check.expect.result,
                     o.result + (f"/{o.error_kind}" if o.error_kind else ""),
                     "-" if o.final_response_s is None else f"{o.final_response_s:.3f}s",
                     _window_cell(o), r.verdict, str(o.diagnosis[0]["code"]) if o.diagnosis else "-"))
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*row).rstrip() for row in body]
    reasons = [line for r in results if r.verdict != "OK" for line in _reasons(r)]
    if reasons:
        out += ["", *reasons]
    out += ["", _counts(results)]
    return "\n".join(out)


def _reasons(r: CheckResult) -> list[str]:
    lines = [f"{r.verdict} {r.check.name} @ {r.check.target.name}: " + "; ".join(r.failures + r.degraded)]
    if r.failures and r.outcome.diagnosis:
        lines.append(f"    what to check: {r.outcome.diagnosis[0]['text']}")
    return lines


def _counts(results: Sequence[CheckResult]) -> str:
    counts = {v: sum(1 for r in results if r.verdict == v) for v in ("OK", "DEGRADED", "FAILED", "UNKNOWN")}
    return f"{len(results)} check(s): " + ", ".join(f"{n} {v}" for v, n in counts.items())


def checks_json(results: Sequence[CheckResult], exit_code: int, extra: dict[str, Any] | None = None) -> str:
    """``run --json``: schema 1, every check with its verdict and its Outcome (``extra``: e.g. "baseline")."""
    return json.dumps({"schema": 1, "checks": [r.to_dict() for r in results], "exit_code": exit_code,
                       **(extra or {})}, indent=2)


def junit_xml(results: Sequence[CheckResult]) -> str:
    """JUnit XML for CI: a testsuite per probe file, a testcase per check (classname radius-probe.<target>).

    FAILED -> <failure>, UNKNOWN -> <error> (the probe could not run: CI tools
    keep the two apart); DEGRADED passes with its reasons in <system-err>.
    """
    import xml.etree.ElementTree as ET  # only for --junit: a one-shot check does not load the XML stack

    by_file: dict[str, list[CheckResult]] = {}
    for r in results:
        by_file.setdefault(r.check.source, []).append(r)
    # Jenkins' schema allows skipped on <testsuite> only: <testsuites> with it is rejected
    totals = {k: v for k, v in _junit_counts(results).items() if k != "skipped"}
    root = ET.Element("testsuites", {"name": "radius-probe", **totals})
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    for source, group in by_file.items():
        suite = ET.SubElement(root, "testsuite", {"name": source, "timestamp": stamp, **_junit_counts(group)})
        for r in group:
            _junit_case(suite, r)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _junit_counts(results: Sequence[CheckResult]) -> dict[str, str]:
    return {"tests": str(len(results)), "failures": str(sum(r.verdict == "FAILED" for r in results)),
            "errors": str(sum(r.verdict == "UNKNOWN" for r in results)), "skipped": "0",
            "time": f"{sum(r.outcome.duration_s for r in results):.3f}"}


def _junit_case(suite: ET.Element, r: CheckResult) -> None:
    import xml.etree.ElementTree as ET

    case = ET.SubElement(suite, "testcase", classname=f"radius-probe.{r.check.target.name}",
                         name=r.check.name, time=f"{r.outcome.duration_s:.3f}")
    kind = {"FAILED": "failure", "UNKNOWN": "error"}.get(r.verdict)
    if kind is not None:
        message = r.failures[0] + (f". {r.outcome.diagnosis[0]['text']}" if r.outcome.diagnosis else "")
        problem = ET.SubElement(case, kind, message=message, type=r.verdict)
        problem.text = "\n".join(r.failures + [str(d["text"]) for d in r.outcome.diagnosis])
    ET.SubElement(case, "system-out").text = r.outcome.to_json()
    if r.degraded:
        ET.SubElement(case, "system-err").text = "\n".join(f"DEGRADED: {d}" for d in r.degraded)


_NAGIOS = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}


def _first_finding(r: CheckResult) -> str:
    """What made the check non-OK, for one-line summaries: the failing expectation itself, or the first code."""
    if not r.outcome.diagnosis:
        return ""
    code = str(r.outcome.diagnosis[0]["code"])
    if code == "expectation_unmet" and r.failures:
        return f" ({r.failures[0]})"
    return f" ({code})"


def nagios(results: Sequence[CheckResult], exit_code: int, slow_fraction: float) -> str:
    """Monitoring-plugin output: the status line with perfdata, then one line per non-OK check."""
    bad = [r for r in results if r.verdict != "OK"]
    if bad:
        text = "; ".join(f"{r.check.name}@{r.check.target.name} {r.verdict}" + _first_finding(r) for r in bad)
    else:
        text = f"{len(results)} check(s) OK"
    names = [r.check.name for r in results]
    perf = []
    for r in results:
        label = r.check.name if names.count(r.check.name) == 1 else f"{r.check.name}@{r.check.target.name}"
        o = r.outcome
        value = "U" if o.final_response_s is None else f"{o.final_response_s:.3f}s"
        label = label.replace("'", "''").replace("=", "_")
        perf.append(f"'{label}_s'={value};{slow_fraction * o.window_s:g};{o.window_s:g};0;")
    lines = [f"RADIUS {_NAGIOS[exit_code]} - {text} | {' '.join(perf)}"]
    lines += [line for r in bad for line in _reasons(r)[:1]]
    return "\n".join(lines)


def progress_line(p: Progress, now: float | None = None) -> str:
    """The live line on stderr while checks run (long MFA waits show how long they have waited)."""
    running = len(p.started)
    line = f"radius-probe: {p.done}/{p.total} done, {running} running"
    longest = p.longest(now)
    if longest is not None:
        line += f" (longest {longest[1]:.0f} s: {longest[0]})"
    return line
