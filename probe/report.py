"""Human-readable renderings of Outcomes (they read the Outcome; none re-derive it)."""

from __future__ import annotations

from typing import Sequence

from .outcome import Outcome


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def verdict(o: Outcome) -> str:
    if o.error_kind == "local":
        return "COULD NOT PROBE"
    if not o.expectation_met:
        return "FAILED"
    return "DEGRADED" if o.degraded else "OK"


def summary(o: Outcome) -> str:
    """The one-screen answer of ``radius-probe auth``."""
    lines = [f"{o.method} {o.identity!r} -> {o.target}"]
    result = o.result.upper() + (f" ({o.error_kind}: {o.error_detail})" if o.error_kind else "")
    lines.append(f"  Result        {result}")
    lines.append(f"  Expected      {o.expected}: {'met' if o.expectation_met else 'NOT met'}  [{verdict(o)}]")
    lines.append(
        f"  Time          final answer {_secs(o.final_response_s)}, total {_secs(o.duration_s)}, "
        f"{o.round_trips} round trip(s), {o.retransmissions} retransmission(s)"
    )
    if o.result in ("accept", "reject", "challenge"):
        window = "within" if o.within_window else "OUTSIDE"
        line = f"  MFA window    {window} the {o.window_s:g} s window"
        if o.late:
            line += f"; LATE: after this client's {o.client_timeout_s:g} s timeout"
        lines.append(line)
    else:
        lines.append(f"  MFA window    no answer within {o.window_s:g} s")
    if o.reply_message:
        lines.append(f"  Reply-Message {o.reply_message!r}")
    shown = {k: v for k, v in o.reply_attributes.items() if k not in ("Reply-Message", "State")}
    if shown:
        lines.append("  Attributes    " + "; ".join(f"{k}={', '.join(map(str, v))}" for k, v in shown.items()))
    if o.message_authenticator:
        lines.append(f"  Msg-Auth      {o.message_authenticator} in the reply")
    if o.method != "pap":
        lines.append(f"  Keys          mppe {o.mppe}, cryptobinding {o.cryptobinding}")
    for item in o.degraded:
        lines.append(f"  Degraded      {item}")
    for item in o.warnings:
        lines.append(f"  Warning       {item}")
    for d in o.diagnosis:
        lines.append(f"  Diagnosis     [{d['code']}] {d['text']}")
    return "\n".join(lines)


def table(rows: Sequence[tuple[str, Outcome]], *, title: str | None = None) -> str:
    """A table of (case name, Outcome) with the diagnosis for each failure below it."""
    head = ("case", "method", "identity", "expected", "result", "final", "rounds", "window", "verdict", "diagnosis")
    body = []
    for name, o in rows:
        result = o.result + (f"/{o.error_kind}" if o.error_kind else "")
        window = "late" if o.late else ("in" if o.within_window else ("out" if o.final_response_s else "-"))
        codes = ",".join(str(d["code"]) for d in o.diagnosis) or "-"
        body.append((name, o.method, o.identity, o.expected, result,
                     "-" if o.final_response_s is None else f"{o.final_response_s:.2f}s",
                     str(o.round_trips), window, verdict(o), codes))
    widths = [max(len(str(r[i])) for r in [head, *body]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [title] if title else []
    out.append(fmt.format(*head))
    out.append(fmt.format(*("-" * w for w in widths)))
    out += [fmt.format(*r) for r in body]
    return "\n".join(out)
