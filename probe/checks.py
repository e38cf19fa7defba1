"""Run a probe file's checks: concurrently, one client per target, verdicts per check.

The Outcome says what the server did; a CheckResult adds what the probe file
expected of it (reply message, attributes, a time bound) and the degraded
states an admin must act on before they become outages: a certificate about
to expire, an answer that eats most of the MFA window, replies that carry no
Message-Authenticator (Blast-RADIUS, KB5040268).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from .inputs import UsageError, resolve
from .config import Check
from .conversation import authenticate
from .diagnosis import entry
from .outcome import DEFAULT_SLOW_FRACTION, VERDICTS, EXIT_DEGRADED, EXIT_FAILED, EXIT_OK, EXIT_UNKNOWN, Outcome, finalize
from .radius.dictionary import DictionaryError, RadiusDictionary, default_dictionary
from .radius.transport import RadiusClient

DEFAULT_CONCURRENCY = 32
DEFAULT_CERT_WARN_DAYS = 30
BLAST_RADIUS = (
    "replies carry no Message-Authenticator, so a forged reply cannot be told apart (Blast-RADIUS, "
    "CVE-2024-3596); see KB5040268: `netsh nps set requiremsgauth` and `limitproxystate` on NPS, and prefer "
    "servers that sign every reply (FreeRADIUS 3.2.5 and later)"
)


@dataclass(frozen=True)
class RunOptions:
    concurrency: int = DEFAULT_CONCURRENCY
    cert_warn_days: int = DEFAULT_CERT_WARN_DAYS
    slow_fraction: float = DEFAULT_SLOW_FRACTION


@dataclass
class CheckResult:
    check: Check
    outcome: Outcome
    failures: list[str] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.outcome.error_kind == "local":
            return EXIT_UNKNOWN
        if self.failures:
            return EXIT_FAILED
        return EXIT_DEGRADED if self.degraded else EXIT_OK

    @property
    def verdict(self) -> str:
        return VERDICTS[self.exit_code]

    def to_dict(self) -> dict[str, Any]:
        """One entry of ``run --json``'s "checks" list (the Outcome in its schema-1 form)."""
        return {
            "name": self.check.name, "target": self.check.target.name, "module": self.check.module.name,
            "labels": dict(self.check.target.labels), "verdict": self.verdict, "exit_code": self.exit_code,
            "failures": list(self.failures), "degraded": list(self.degraded),
            "outcome": self.outcome.to_dict(),
        }


@dataclass
class Progress:
    """What the live progress line shows: counts and the longest wait still running."""

    total: int
    done: int = 0
    started: dict[int, tuple[str, float]] = field(default_factory=dict)  # id -> (label, monotonic start)

    def longest(self, now: float | None = None) -> tuple[str, float] | None:
        """The check waiting longest and for how many seconds (None when nothing runs)."""
        if not self.started:
            return None
        label, start = min(self.started.values(), key=lambda item: item[1])
        return label, (time.monotonic() if now is None else now) - start


def worst_exit_code(results: Sequence[CheckResult]) -> int:
    return max((r.exit_code for r in results), default=EXIT_OK)


# ---------------------------------------------------------------------------
# Verdicts


def evaluate(check: Check, outcome: Outcome, options: RunOptions, *, now: datetime | None = None,
             dictionary: RadiusDictionary | None = None) -> CheckResult:
    """The check's failures and degraded states, from the Outcome's fields only."""
    result = CheckResult(check, outcome)
    if outcome.error_kind == "local":
        result.failures.append(f"could not probe: {outcome.error_detail}")
        return result
    result.failures += _expectation_failures(check, outcome, dictionary or default_dictionary())
    if not result.failures:
        result.degraded += list(outcome.degraded)
    for code, text in _certificate_states(outcome, options.cert_warn_days, now or datetime.now(timezone.utc)):
        result.degraded.append(text)
        _add_diagnosis(outcome, code, text)
    if outcome.message_authenticator == "absent" and check.expect.message_authenticator == "required":
        result.degraded.append(BLAST_RADIUS)
        _add_diagnosis(outcome, "message_authenticator_absent", None)
    return result


def _add_diagnosis(outcome: Outcome, code: str, detail: str | None) -> None:
    """Check-level states join the Outcome's diagnosis, so every output shows what to check."""
    if code not in {d["code"] for d in outcome.diagnosis}:
        outcome.diagnosis.append(entry(code).render(detail))


def _expectation_failures(check: Check, o: Outcome, dictionary: RadiusDictionary) -> list[str]:
    exp = check.expect
    if not o.expectation_met:
        got = o.result + (f" ({o.error_kind}: {o.error_detail})" if o.error_kind else "")
        if o.result != exp.result:
            first = f"; {o.diagnosis[0]['code']}" if o.diagnosis else ""
            return [f"expected {exp.result}, got {got}{first}"]
        if o.late:
            return [f"{o.result} came after {o.final_response_s:.1f} s, past the client's "
                    f"{o.client_timeout_s:g} s timeout"]
        return [f"{o.result} came outside the {o.window_s:g} s window"
                + (f" ({o.final_response_s:.1f} s)" if o.final_response_s is not None else "")]
    failures = []
    if exp.within_s is not None and o.duration_s > exp.within_s:
        failures.append(f"answered in {o.duration_s:.3f} s, expected within {exp.within_s:g} s")
    if exp.reply_message is not None and not exp.reply_message.search(o.reply_message or ""):
        failures.append(f"Reply-Message {o.reply_message!r} does not match /{exp.reply_message.pattern}/")
    for name, wanted in exp.attributes.items():
        failures += _attribute_failures(name, wanted, o.reply_attributes.get(name, []), dictionary)
    return failures


def _wire(dictionary: RadiusDictionary, name: str, value: object) -> bytes | None:
    """Compare attribute values as the bytes they are on the wire (1 == "1", "VLAN" == 13)."""
    try:
        return dictionary.encode(name, value if isinstance(value, (str, int, bytes)) else str(value))[1]
    except DictionaryError:
        return None


def _attribute_failures(name: str, wanted: list[str], got: list[Any], dictionary: RadiusDictionary) -> list[str]:
    have = {_wire(dictionary, name, v) for v in got}
    shown = ", ".join(_show(v) for v in got) or "nothing"
    return [f"{name}: expected {value!r}, got {shown}" for value in wanted
            if _wire(dictionary, name, value) not in have]


def _show(value: object) -> str:
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
        return repr(text) if text.isprintable() else "0x" + value.hex()
    return repr(value)


def _certificate_states(o: Outcome, warn_days: int, now: datetime) -> list[tuple[str, str]]:
    """(catalogue code, text) for each certificate that expired or expires within ``warn_days``."""
    states = []
    for key, what in (("server_cert", "server"), ("client_cert", "client")):
        cert = (o.tls or {}).get(key) or {}
        not_after = cert.get("not_after")
        if not not_after:
            continue
        try:
            expiry = datetime.fromisoformat(str(not_after).replace("Z", "+00:00"))
        except ValueError:
            continue
        days = (expiry - now).total_seconds() / 86400
        subject = cert.get("subject", "?")
        code = f"{what}_certificate_expiring"
        if days < 0:
            states.append((code, f"{what} certificate {subject} expired on {not_after}"))
        elif days <= warn_days:
            states.append((code, f"{what} certificate {subject} expires in {int(days)} day(s) ({not_after}); "
                                 f"renew it before it stops authentication"))
    return states


# ---------------------------------------------------------------------------
# Running


def local_failure(check: Check, detail: str) -> Outcome:
    """An Outcome for a check that could not be probed (unresolvable name, unreadable certificate)."""
    m = check.module
    o = Outcome(target=check.target.address, method=m.method, identity=m.identity, expected=check.expect.result,
                window_s=m.window_s, client_timeout_s=m.policy.client_deadline_s)
    o.error_kind, o.error_detail = "local", detail
    return finalize(o)


class _Clients:
    """One RadiusClient per (address, secret): a target's conversations stay on that target."""

    def __init__(self) -> None:
        self._clients: dict[tuple[tuple[str, int], bytes], RadiusClient] = {}
        self._lock = asyncio.Lock()

    async def get(self, address: tuple[str, int], secret: bytes) -> RadiusClient:
        async with self._lock:
            key = (address, secret)
            if key not in self._clients:
                client = RadiusClient(address, secret, clock=time.monotonic)
                await client.__aenter__()
                self._clients[key] = client
            return self._clients[key]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


async def _resolve_targets(checks: Sequence[Check]) -> dict[str, tuple[str, int] | str]:
    """Target name -> resolved address, or the reason it cannot be resolved (resolved once, at run time)."""
    out: dict[str, tuple[str, int] | str] = {}
    for check in checks:
        t = check.target
        if t.name in out:
            continue
        try:
            out[t.name] = await asyncio.to_thread(resolve, t.host, t.port)
        except UsageError as exc:
            out[t.name] = str(exc)
    return out


async def _run_one(check: Check, address: tuple[str, int] | str, clients: _Clients,
                   slow_fraction: float = DEFAULT_SLOW_FRACTION) -> Outcome:
    from .eap.tls import TlsConfigError

    if isinstance(address, str):
        return local_failure(check, address)
    cfg = check.probe_config(address, slow_fraction)
    try:
        client = await clients.get(address, cfg.secret.value)
        return await authenticate(cfg, client)
    except (TlsConfigError, ValueError) as exc:
        return local_failure(check, str(exc))
    except OSError as exc:
        return local_failure(check, f"cannot open a socket to {check.target.address}: {exc.strerror or exc}")


async def run_checks(checks: Sequence[Check], options: RunOptions = RunOptions(), *,
                     progress: Callable[[Progress], None] | None = None, tick_s: float = 1.0) -> list[CheckResult]:
    """Every check once, at most ``options.concurrency`` at a time; results in the checks' order."""
    addresses = await _resolve_targets(checks)
    clients = _Clients()
    state = Progress(total=len(checks))
    gate = asyncio.Semaphore(options.concurrency)

    async def one(index: int, check: Check) -> CheckResult:
        async with gate:
            state.started[index] = (f"{check.name}@{check.target.name}", time.monotonic())
            try:
                outcome = await _run_one(check, addresses[check.target.name], clients, options.slow_fraction)
            finally:
                del state.started[index]
                state.done += 1
        if progress is not None:
            progress(state)
        return evaluate(check, outcome, options)

    ticker = asyncio.create_task(_tick(state, progress, tick_s)) if progress is not None else None
    try:
        return list(await asyncio.gather(*(one(i, c) for i, c in enumerate(checks))))
    finally:
        if ticker is not None:
            ticker.cancel()
        clients.close()


async def _tick(state: Progress, progress: Callable[[Progress], None] | None, tick_s: float) -> None:
    """Repaint the progress line while long MFA waits run, even when nothing finishes."""
    assert progress is not None
    while True:
        progress(state)
        await asyncio.sleep(tick_s)
